"""Bad input of every kind the loaders meet: one line naming the file (and field), exit 2.

Each case here gave a traceback (or worse) before; the fuzz test (test_fuzz_loaders.py)
looks for more of them.
"""

from __future__ import annotations

import copy
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from persistaudit.cli import main
from persistaudit.config import MAX_ALIAS_NODES, load_config, read_yaml
from persistaudit.exceptions import ConfigError
from persistaudit.report import MAX_EXCERPT, MAX_REPORT_TEXT, MAX_ROWS, render_html
from tests.helpers import GOOD_CONFIG, MANIFEST, REPO

GOLDEN = REPO / "tests" / "golden"


def cli(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise AssertionError(f"traceback: {result.exception!r}") from result.exception
    return result.exit_code, result.stdout, result.stderr


def one_error_line(stderr: str) -> str:
    """The single line on stderr, which must be persistaudit's error line."""
    assert stderr.endswith("\n")
    assert stderr.count("\n") == 1, stderr
    assert stderr.startswith("persistaudit: error: ")
    return stderr


# -- YAML ------------------------------------------------------------------------------------

BAD_YAML = [
    ("a: !!int x\n", "1:4: malformed YAML: 'x' is not a valid int"),
    ("a: !!bool maybe\n", "1:4: malformed YAML: 'maybe' is not a valid bool"),
    ("a: !!timestamp nope\n", "1:4: malformed YAML: 'nope' is not a valid timestamp"),
    ("a: !!float x\n", "1:4: malformed YAML: 'x' is not a valid float"),
    ("a: " + "9" * 5000 + "\n", "(5,002 characters) is not a valid int"),
    ("a: &r [*r]\n", "malformed YAML: an alias refers to a node that contains it"),
    ("a: &r {b: *r}\n", "malformed YAML: an alias refers to a node that contains it"),
    ("a: " + "[" * 150 + "]" * 150 + "\n", "malformed YAML: nested deeper than 100 levels"),
    # YAML keeps the last of two equal keys: a setting or table written twice, half lost.
    ("a: 1\nb: 2\na: 3\n", "bad.yaml:3:1: malformed YAML: duplicate key 'a'"),
    ("a: {b: 1, b: 2}\n", "bad.yaml:1:11: malformed YAML: duplicate key 'b'"),
    ("a:\n  b: 1\n  b: {}\n", "bad.yaml:3:3: malformed YAML: duplicate key 'b'"),
]


@pytest.mark.parametrize(("text", "expected"), BAD_YAML)
def test_bad_yaml_is_one_line_for_config_and_manifest(
    config_dir: Path, text: str, expected: str
) -> None:
    path = config_dir / "bad.yaml"
    path.write_text(text)
    for args in (
        ["run", str(path)],
        ["diff", str(path), str(config_dir / "manifest.yaml")],
        ["diff", str(config_dir / "manifest.yaml"), str(path)],
    ):
        code, _, err = cli(*args)
        assert code == 2
        assert expected in one_error_line(err)
        assert f"{path}:" in err


def billion_laughs(levels: int) -> str:
    lines = ["l0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for i in range(1, levels + 1):
        lines.append(f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 10) + "]")
    return "\n".join(lines) + "\n"


def test_billion_laughs_is_refused_before_it_expands(tmp_path: Path) -> None:
    path = tmp_path / "laughs.yaml"
    path.write_text(billion_laughs(9))  # 10**10 nodes once expanded, from 600 bytes
    with pytest.raises(
        ConfigError, match=f"aliases expand the document by more than {MAX_ALIAS_NODES:,} nodes"
    ):
        read_yaml(path)


def test_aliases_within_the_bound_still_work(tmp_path: Path) -> None:
    path = tmp_path / "ok.yaml"
    path.write_text(billion_laughs(3))  # 10,000 expanded nodes: fine
    data, _ = read_yaml(path)
    assert len(data["l3"]) == 10
    assert data["l3"][0][0][0] == data["l0"]


def test_a_config_using_anchors_and_aliases_loads(config_dir: Path) -> None:
    text = GOOD_CONFIG.replace("port: 8080, json", "port: &port 8080, json")
    text = text.replace("port: 8080, expect_body", "port: *port, expect_body")
    assert "*port" in text
    (config_dir / "audit.yaml").write_text(text)
    config = load_config(config_dir / "audit.yaml")
    assert config.canary.read[0].port == config.canary.write[0].port == 8080


@pytest.mark.parametrize(
    ("old", "new", "field"),
    [
        ("  manifest: manifest.yaml\n", '  manifest: "mani\\0fest.yaml"\n', "expect.manifest"),
        ("  path: /data/app.db\n", '  path: "/data/app\\0.db"\n', "database.path"),
        ("  API_TOKEN: hunter2\n", '  API_TOKEN: "hun\\0ter2"\n', "env.API_TOKEN"),
    ],
)
def test_nul_bytes_in_a_config_name_the_field(
    config_dir: Path, old: str, new: str, field: str
) -> None:
    (config_dir / "audit.yaml").write_text(GOOD_CONFIG.replace(old, new))
    code, _, err = cli("run", str(config_dir / "audit.yaml"))
    assert code == 2
    assert "audit.yaml:" in one_error_line(err)
    assert f"{field}: contains a NUL byte" in err


def test_an_unset_variable_names_the_file(config_dir: Path) -> None:
    text = GOOD_CONFIG.replace("image: example/demo:1", "image: ${PA_UNSET_FOR_TEST}")
    (config_dir / "audit.yaml").write_text(text)
    with pytest.raises(ConfigError) as err:
        load_config(config_dir / "audit.yaml", environ={})
    assert str(err.value) == (
        f"{config_dir / 'audit.yaml'}: environment variable PA_UNSET_FOR_TEST is not set "
        "(used as ${PA_UNSET_FOR_TEST})"
    )


def test_a_build_context_path_too_long_for_the_system(config_dir: Path) -> None:
    text = GOOD_CONFIG.replace("image: example/demo:1\n", f"build: {{context: {'x' * 5000}}}\n")
    (config_dir / "audit.yaml").write_text(text)
    code, _, err = cli("run", str(config_dir / "audit.yaml"))
    assert code == 2
    assert "audit.yaml: " in one_error_line(err)


def test_a_huge_manifest_version_is_shown_cut(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    path.write_text(f"manifest_version: '{'9' * 100_000}'\ntables: {{}}\n")
    code, _, err = cli("diff", str(path), str(path))
    assert code == 2
    assert "(100,002 characters) is not supported" in one_error_line(err)
    assert len(err) < 300


# -- databases -------------------------------------------------------------------------------


def corrupt_name(path: Path, old: bytes, new: bytes) -> None:
    data = path.read_bytes()
    assert len(old) == len(new)
    path.write_bytes(data.replace(old, new))


def test_a_database_whose_sqlite_error_is_not_utf8(tmp_path: Path) -> None:
    db = tmp_path / "bad.db"
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE tname(a)")
    conn.commit()
    conn.close()
    # sqlite_master's name is invalid UTF-8 and the CREATE statement no longer parses.
    corrupt_name(db, b"CREATE TABLE tname(a)", b"CREATE TABLE t\xffame(a,")
    corrupt_name(db, b"tname", b"t\xffame")
    (tmp_path / "m.yaml").write_text(MANIFEST)
    code, _, err = cli("diff", str(tmp_path / "m.yaml"), str(db))
    assert code == 2
    assert "bad.db: cannot read the schema: malformed database schema (t\\xffame" in err
    one_error_line(err)


def test_a_sqlite_message_with_a_multi_line_statement_is_one_line(tmp_path: Path) -> None:
    db = tmp_path / "bad.db"
    conn = sqlite3.connect(db)
    conn.execute('CREATE TABLE "a\nb"(x)')
    conn.execute('CREATE VIEW "v\nw" AS\n  SELECT x\n  FROM "a\nb"')
    conn.commit()
    conn.close()
    corrupt_name(db, b'  FROM "a\nb"', b'  FROM "a\nb"'.replace(b"FROM", b"FRXM"))
    (tmp_path / "m.yaml").write_text(MANIFEST)
    code, _, err = cli("diff", str(tmp_path / "m.yaml"), str(db))
    assert code == 2
    assert "malformed database schema (v" in one_error_line(err)


def test_a_sqlite_message_quoting_a_multi_line_check_is_one_line(tmp_path: Path) -> None:
    ddl = tmp_path / "schema.sql"
    ddl.write_text("CREATE TABLE t(a CHECK (a >\n    0));\nINSERT INTO t VALUES (-1);\n")
    code, _, err = cli("snapshot", "--from-sql", str(ddl))
    assert code == 2
    assert "the SQL does not run: CHECK constraint failed: a > 0" in one_error_line(err)


# -- results.json ----------------------------------------------------------------------------


def golden(name: str = "fail") -> dict[str, Any]:
    return dict(json.loads((GOLDEN / f"{name}.results.json").read_text()))


@pytest.mark.parametrize(
    ("doc", "expected"),
    [
        ({"verdict": "PASS", "checks": []}, "not a persistaudit results.json (no schema key)"),
        ([], "not a persistaudit results.json (no schema key)"),
        ({**golden(), "checks": {}}, 'checks: {} is not of type "array"'),
        (
            {**golden(), "verdict": "MAYBE"},
            'verdict: "MAYBE" is not one of "PASS", "FAIL", "BLOCKED" or "ERROR"',
        ),
        (
            {**golden(), "schema": "persistaudit/results/v9"},
            'schema: "persistaudit/results/v1" was expected',
        ),
        ({**golden(), "metrics": [{"name": "x"}]}, 'metrics[0]: "target" is a required property'),
        ({**golden(), "environment": {}}, 'environment: "persistaudit" is a required property'),
    ],
)
def test_results_of_the_wrong_shape_to_report_and_compare(
    tmp_path: Path, doc: Any, expected: str
) -> None:
    bad = tmp_path / "results.json"
    bad.write_text(json.dumps(doc))
    good = tmp_path / "good.json"
    good.write_text(json.dumps(golden()))
    for args in (
        ["report", str(bad), "-o", str(tmp_path / "r.md")],
        ["report", str(bad), "-o", str(tmp_path / "r.html"), "--format", "html"],
        ["compare", str(good), str(bad)],
        ["compare", str(bad), str(good)],
    ):
        code, _, err = cli(*args)
        assert code == 2, err
        assert f"{bad}: {expected}" in one_error_line(err)


def test_a_check_with_a_bad_evidence_kind_names_the_field(tmp_path: Path) -> None:
    doc = golden()
    doc["checks"][1]["evidence"][0]["kind"] = "video"
    path = tmp_path / "results.json"
    path.write_text(json.dumps(doc))
    code, _, err = cli("report", str(path), "-o", str(tmp_path / "r.md"))
    assert code == 2
    assert 'results.json: checks[1].evidence[0].kind: "video" is not one of' in one_error_line(err)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"schema": 1, "schema": 2}', "not valid JSON: duplicate key 'schema'"),
        ('{"duration_s": NaN}', "not valid JSON: NaN is not a JSON number"),
        ("[" * 100_000 + "]" * 100_000, "not valid JSON: nested too deeply"),
        ('{"n": ' + "1" * 5000 + "}", "not valid JSON: "),
        (b"\xff\xfe{}", "not UTF-8 text (byte 0)"),
        ('{"schema": "\\ud800"}', "not valid JSON: surrogates not allowed ('\\ud800')"),
    ],
)
def test_results_that_are_not_strict_json(tmp_path: Path, text: str | bytes, expected: str) -> None:
    path = tmp_path / "results.json"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    code, _, err = cli("report", str(path), "-o", str(tmp_path / "r.md"))
    assert code == 2
    assert f"{path}: {expected}" in one_error_line(err)


def test_a_report_into_a_missing_folder_is_one_line(tmp_path: Path) -> None:
    out = tmp_path / "no" / "report.md"
    code, _, err = cli("report", str(GOLDEN / "pass.results.json"), "-o", str(out))
    assert code == 2
    assert f"{out}: cannot write: No such file or directory" in one_error_line(err)


def test_every_golden_results_file_still_renders(tmp_path: Path) -> None:
    for name in ("pass", "fail", "blocked"):
        code, _, err = cli(
            "report", str(GOLDEN / f"{name}.results.json"), "-o", str(tmp_path / "r.md")
        )
        assert code == 0, err
        assert (tmp_path / "r.md").read_text() == (GOLDEN / f"{name}.report.md").read_text()


def test_html_of_a_huge_results_file_cuts_excerpts_with_a_note() -> None:
    doc = golden()
    check = doc["checks"][1]
    check["evidence"][0]["content"] = "log line\n" * 1_000_000  # 9 MB of one excerpt
    check["evidence"].append(
        {
            "title": "huge table",
            "content": "",
            "kind": "table",
            "columns": ["a"],
            "rows": [[f"row {i}"] for i in range(50_000)],
        }
    )
    check["summary"] = "*[" * 500_000  # slow to parse as Markdown when whole
    html = render_html(copy.deepcopy(doc))
    assert len(html) < 500_000
    assert f"[... {9_000_000 - MAX_EXCERPT:,} more characters cut from the report" in html
    assert f"[... {50_000 - MAX_ROWS:,} more rows cut from the report" in html
    assert "results.json has them all" in html


def test_more_checks_than_any_report_holds_are_refused(tmp_path: Path) -> None:
    doc = golden()
    doc["checks"] = [doc["checks"][0]] * 1001
    path = tmp_path / "results.json"
    path.write_text(json.dumps(doc))
    code, _, err = cli("report", str(path), "-o", str(tmp_path / "r.md"))
    assert code == 2
    assert "results.json: checks: " in one_error_line(err)


def test_the_report_as_a_whole_has_a_text_budget() -> None:
    doc = golden()
    check = doc["checks"][1]
    check["summary"] = "x" * 2000  # at the cap of one text
    doc["checks"] = [copy.deepcopy(check) for _ in range(1000)]  # the most a results.json has
    html = render_html(doc)
    assert f"the report's limit of {MAX_REPORT_TEXT:,} characters is reached" in html
    assert len(html) < 6 * MAX_REPORT_TEXT
    assert html.count("<h3><code>") == 1000  # every check is still listed, with its status


def test_html_shows_target_text_as_written_never_as_links_or_emphasis() -> None:
    doc = golden()
    doc["checks"][1]["summary"] = "a *b* _c_ [click](https://evil.example) ![x](y) &amp; ~~d~~"
    html = render_html(doc)
    assert "<a " not in html
    assert "<img" not in html
    assert "<em>" not in html
    assert "a *b* _c_ [click](https://evil.example) ![x](y) &amp;amp; ~~d~~" in html


# -- keys (signature.json's shape and tamper cases are in test_signing.py) --------------------


def test_keygen_into_a_missing_folder_is_one_line(tmp_path: Path) -> None:
    code, _, err = cli("keygen", str(tmp_path / "no" / "such" / "key"))
    assert code == 2
    assert f"folder {tmp_path / 'no' / 'such'} does not exist" in one_error_line(err)
    assert not (tmp_path / "no").exists()

"""The exact schema diff: collation and AUTOINCREMENT count, same meaning does not, a
change is shown as a word diff, and no name can forge a line of the output."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner

from persistaudit.cli import main
from persistaudit.diff import Difference, diff
from persistaudit.difftable import rows
from persistaudit.manifest import Manifest, dump_manifest, from_data, load_manifest
from persistaudit.report import render_html, render_markdown
from persistaudit.schema import from_file, read_schema
from tests.unit.test_report import results


def snap(sql: str) -> Manifest:
    conn = sqlite3.connect(":memory:")
    try:
        conn.executescript(sql)
        return read_schema(conn)
    finally:
        conn.close()


def drift(before: str, after: str) -> list[str]:
    return [d.describe() for d in diff(snap(before), snap(after))]


T = "CREATE TABLE t (id INTEGER PRIMARY KEY, a TEXT, b TEXT);"


@pytest.mark.parametrize(
    ("before", "after", "added", "removed"),
    [
        (
            T,
            T.replace("a TEXT", "a TEXT COLLATE NOCASE"),
            "changed column t.a: collation: expected BINARY, found NOCASE",
            "changed column t.a: collation: expected NOCASE, found BINARY",
        ),
        (
            T.replace(");", ", UNIQUE (a, b));"),
            T.replace(");", ", UNIQUE (a, b COLLATE NOCASE));"),
            "changed index t: UNIQUE(a, b): collation: expected b BINARY, found b NOCASE",
            "changed index t: UNIQUE(a, b): collation: expected b NOCASE, found b BINARY",
        ),
        (
            T + "CREATE INDEX ix ON t (a, b);",
            T + "CREATE INDEX ix ON t (a, b COLLATE RTRIM);",
            "changed index ix: columns: a, b {+collate rtrim+}",
            "changed index ix: columns: a, b [-collate rtrim-]",
        ),
        (
            T,
            T.replace("PRIMARY KEY", "PRIMARY KEY AUTOINCREMENT"),
            "changed table t: autoincrement: expected false, found true",
            "changed table t: autoincrement: expected true, found false",
        ),
    ],
    ids=["column", "unique", "index", "autoincrement"],
)
def test_collation_and_autoincrement_are_drift(
    before: str, after: str, added: str, removed: str
) -> None:
    assert drift(before, after) == [added]
    assert drift(after, before) == [removed]


def test_snapshot_writes_the_new_fields_and_reads_them_back(tmp_path: Path) -> None:
    sql = (
        "CREATE TABLE t (id INTEGER PRIMARY KEY AUTOINCREMENT, a TEXT COLLATE nocase,"
        " b TEXT, UNIQUE (a, b COLLATE rtrim));"
    )
    manifest = snap(sql)
    text = dump_manifest(manifest)
    assert "- {name: a, type: TEXT, collation: NOCASE}\n" in text
    assert "- {columns: [a, b], collations: {b: RTRIM}}\n" in text
    assert "    autoincrement: true\n" in text
    path = tmp_path / "m.yaml"
    path.write_text(text)
    assert load_manifest(path) == manifest
    assert dump_manifest(load_manifest(path)) == text
    # A UNIQUE key that uses its column's own collation says nothing more.
    same = snap("CREATE TABLE t (a TEXT COLLATE NOCASE, UNIQUE (a COLLATE NOCASE));")
    assert same.tables["t"].unique_collations == []


def test_a_manifest_without_the_fields_means_binary_and_no_autoincrement(tmp_path: Path) -> None:
    path = tmp_path / "old.yaml"
    path.write_text(
        "manifest_version: 1\ntables:\n  t:\n    columns:\n"
        "    - {name: id, type: INTEGER, pk: 1}\n    - {name: a, type: TEXT}\n"
        "    primary_key: [id]\n"
    )
    old = load_manifest(path)
    assert diff(old, snap("CREATE TABLE t (id INTEGER PRIMARY KEY, a TEXT);")) == []
    found = diff(old, snap("CREATE TABLE t (id INTEGER PRIMARY KEY AUTOINCREMENT, a TEXT);"))
    assert [d.describe() for d in found] == [
        "changed table t: autoincrement: expected false, found true"
    ]
    found = diff(old, snap("CREATE TABLE t (id INTEGER PRIMARY KEY, a TEXT COLLATE NOCASE);"))
    assert [d.describe() for d in found] == [
        "changed column t.a: collation: expected BINARY, found NOCASE"
    ]


@pytest.mark.parametrize(
    ("before", "after"),
    [
        ("CREATE TABLE t (a TEXT);", "CREATE TABLE t (a TEXT DEFAULT NULL);"),
        ("CREATE TABLE t (a TEXT);", "CREATE TABLE t (a TEXT DEFAULT (NULL));"),
        ("CREATE TABLE t (a INT DEFAULT 0);", "CREATE TABLE t (a INT DEFAULT ((0)));"),
        ("CREATE TABLE t (a TEXT);", "CREATE TABLE t (a TEXT COLLATE BINARY);"),
        ("CREATE TABLE t (a TEXT COLLATE NOCASE);", 'CREATE TABLE t (a TEXT COLLATE "nocase");'),
        (T + "CREATE INDEX ix ON t (a, b DESC);", T + "CREATE INDEX ix ON t (a ASC, b DESC);"),
        (
            "CREATE TABLE t (a TEXT COLLATE NOCASE); CREATE INDEX ix ON t (a);",
            "CREATE TABLE t (a TEXT COLLATE NOCASE); CREATE INDEX ix ON t (a COLLATE NOCASE);",
        ),
        ("CREATE TABLE t (a TEXT CHECK (a != ''));", "CREATE TABLE t (a TEXT CHECK (a <> ''));"),
        ("CREATE TABLE t (a INT CHECK (a = 1));", "CREATE TABLE t (a INT CHECK (a == 1));"),
        (
            T + "CREATE INDEX ix ON t (a) WHERE a != 'x';",
            T + "CREATE INDEX ix ON t (a) WHERE a <> 'x';",
        ),
        (
            T + "CREATE VIEW v AS SELECT a FROM t WHERE b != a;"
            "CREATE TRIGGER tr AFTER INSERT ON t BEGIN SELECT 1; END;"
            "CREATE INDEX ix ON t (a);",
            T.replace("t (", "T (").replace("a TEXT", "A TEXT")
            + "CREATE VIEW V AS SELECT a FROM t WHERE b <> a;"
            "CREATE TRIGGER TR AFTER INSERT ON T BEGIN SELECT 1; END;"
            "CREATE INDEX IX ON T (A);",
        ),
    ],
    ids=[
        "default-null",
        "default-(null)",
        "default-parentheses",
        "collate-binary",
        "collation-name-case",
        "index-asc",
        "index-collate-of-its-column",
        "<>",
        "==",
        "where-<>",
        "name-case",
    ],
)
def test_same_meaning_is_not_drift(before: str, after: str) -> None:
    assert drift(before, after) == []
    assert drift(after, before) == []


def test_what_only_looks_the_same_is_drift() -> None:
    assert drift("CREATE TABLE t (a TEXT);", "CREATE TABLE t (a TEXT DEFAULT 'NULL');") == [
        "changed column t.a: default: expected (none), found 'NULL'"
    ]
    assert drift(T + "CREATE INDEX ix ON t (a);", T + "CREATE INDEX ix ON t (a DESC);") == [
        "changed index ix: columns: a {+desc+}"
    ]
    # A COLLATE in an index key means something when it is not the column's own.
    assert drift(
        "CREATE TABLE t (a TEXT COLLATE NOCASE); CREATE INDEX ix ON t (a);",
        "CREATE TABLE t (a TEXT COLLATE NOCASE); CREATE INDEX ix ON t (a COLLATE BINARY);",
    ) == ["changed index ix: columns: a {+collate binary+}"]


def test_manifests_written_before_keep_their_meaning(tmp_path: Path) -> None:
    """Older snapshots wrote `<>`, `a asc` and DEFAULT NULL as they were: still no drift."""
    path = tmp_path / "old.yaml"
    path.write_text(
        "manifest_version: 1\ntables:\n  T:\n    columns:\n"
        "    - {name: A, type: TEXT, default: 'null'}\n"
        "    checks:\n    - a <> ''\n"
        "indexes:\n  IX: {table: T, columns: [a asc], where: a <> 'x'}\n"
        "views:\n  V: {sql: select a from t where a <> 'y'}\n"
    )
    now = snap(
        "CREATE TABLE t (a TEXT CHECK (a != ''));"
        "CREATE INDEX ix ON t (a) WHERE a != 'x';"
        "CREATE VIEW v AS SELECT a FROM t WHERE a != 'y';"
    )
    assert diff(load_manifest(path), now) == []


def test_names_that_differ_only_in_case_are_one_object(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    path.write_text("manifest_version: 1\ntables:\n  notes: {}\n  Notes: {}\n")
    code, out = cli("diff", str(path), str(path))
    assert code == 2
    assert "tables 'notes' and 'Notes' are one name in SQLite" in out
    assert out.count("\n") == 1
    ignored = from_data({"manifest_version": 1, "tables": {}, "options": {"ignore": ["tmp_*"]}})
    assert ignored.ignored("TMP_x")


def test_unique_collations_must_name_a_unique(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    path.write_text(
        "manifest_version: 1\ntables:\n  t:\n    unique:\n    - [a]\n"
        "    unique_collations:\n    - {columns: [b], collations: {b: NOCASE}}\n"
    )
    code, out = cli("diff", str(path), str(path))
    assert code == 2
    assert "unique_collations names UNIQUE(b), which is not in unique" in out
    assert out.count("\n") == 1


VIEW = (
    "CREATE VIEW summary AS SELECT n.id, n.title, n.status, b.title AS notebook, "
    "u.email AS author FROM notes n JOIN notebooks b ON b.id = n.notebook_id "
    "JOIN users u ON u.id = n.author_id WHERE n.status != 'archived';"
)
BASE = (
    "CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT, display_name TEXT);"
    "CREATE TABLE notebooks (id INTEGER PRIMARY KEY, title TEXT);"
    "CREATE TABLE notes (id INTEGER PRIMARY KEY, notebook_id INT, author_id INT, title TEXT,"
    " status TEXT CHECK (status IN ('draft', 'published')), size INT CHECK (size >= 0));"
    "CREATE INDEX ix_notes ON notes (notebook_id, title) WHERE status != 'draft';"
    "CREATE TRIGGER tr_notes AFTER DELETE ON notebooks BEGIN"
    " DELETE FROM notes WHERE notebook_id = old.id; END;"
)


def test_a_changed_view_trigger_check_or_condition_is_a_word_diff() -> None:
    after = (
        BASE.replace("('draft', 'published')", "('draft', 'published', 'archived')")
        .replace("WHERE status != 'draft'", "WHERE status = 'published'")
        .replace("notebook_id = old.id", "notebook_id = old.id AND title IS NULL")
    )
    found = diff(snap(BASE + VIEW), snap(after + VIEW.replace("u.email", "u.display_name")))
    assert [d.describe() for d in found] == [
        "changed check notes: CHECK on status: status in ('draft', 'published' {+, 'archived'+})",
        "changed index ix_notes: where: status [-!= 'draft'-]{+= 'published'+}",
        "changed view summary: ... title as notebook, u.[-email-]{+display_name+} as author"
        " from notes n join ...",
        "changed trigger tr_notes: ... where notebook_id = old.id {+and title is null+}; end",
    ]
    index = found[1]
    assert (index.expected, index.actual) == (
        {"where": "status != 'draft'"},
        {"where": "status = 'published'"},
    )  # only the field that changed, full text in the JSON


def test_checks_pair_only_when_it_is_clear_which_became_which() -> None:
    table = "CREATE TABLE t (a INT CHECK (a > 0), b INT CHECK (b > 0), c INT);"
    # Both changed: each pairs with the one over the same column.
    both = drift(table, table.replace("a > 0", "a > 1").replace("b > 0", "b < 9"))
    assert both == [
        "changed check t: CHECK on a: a > [-0-]{+1+}",
        "changed check t: CHECK on b: b [-> 0-]{+< 9+}",
    ]
    # One removed, another added over another column: not a change of one into the other.
    moved = drift(
        table, table.replace("a INT CHECK (a > 0)", "a INT").replace("c INT", "c INT CHECK (c > 0)")
    )
    assert moved == ["missing check t: CHECK(a > 0)", "unexpected check t: CHECK(c > 0)"]


def cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.output


FORGED = "x\n    missing table forged"


def hostile(tmp_path: Path) -> tuple[Path, Path]:
    """A manifest, and a database whose names carry newlines, a CR and escape sequences."""
    db = tmp_path / "hostile.db"
    conn = sqlite3.connect(db)
    conn.executescript(
        f'CREATE TABLE "{FORGED}" (id INTEGER PRIMARY KEY);'
        "CREATE TABLE t (id INTEGER PRIMARY KEY, a TEXT CHECK (a != '\n  unexpected x'),"
        ' "c\r\x1b[2Kok" TEXT);'
        f"CREATE VIEW \"v\u202e\" AS SELECT '\nno drift' AS a;"
    )
    conn.close()
    manifest = tmp_path / "m.yaml"
    manifest.write_text(
        "manifest_version: 1\ntables:\n  t:\n    columns:\n"
        "    - {name: id, type: INTEGER, pk: 1}\n    - {name: a, type: TEXT}\n"
        "    primary_key: [id]\n"
    )
    return manifest, db


def test_names_cannot_forge_lines_of_the_diff(tmp_path: Path) -> None:
    manifest, db = hostile(tmp_path)
    code, out = cli("diff", str(manifest), str(db))
    assert code == 1
    lines = out.splitlines()
    assert len(lines) == 1 + 3 + 2 + 2  # the header, then each group's name and its items
    assert not any(line.lstrip().startswith(("missing table forged", "no drift")) for line in lines)
    assert "  x\\n    missing table forged\n" in out
    assert "unexpected table x\\n    missing table forged" in out
    assert "unexpected view v\\u202e" in out
    assert "unexpected column t.c\\r\\x1b[2Kok" in out
    assert "unexpected check t: CHECK(a != '\\n  unexpected x')" in out
    assert not {"\x1b", "\r", "\u202e"} & set(out)


def test_names_cannot_forge_lines_of_the_report(tmp_path: Path) -> None:
    manifest, db = hostile(tmp_path)
    found = diff(load_manifest(manifest), from_file(db))
    summary = "; ".join(d.describe() for d in found)
    doc = results(verdict="FAIL")
    doc["checks"].append(
        {
            "id": "fresh_install.schema",
            "suite": "fresh_install",
            "status": "failed",
            "summary": summary,
            "duration_s": 0.1,
            "evidence": [
                {
                    "title": "table differences",
                    "content": "",
                    "kind": "table",
                    "columns": ["Difference", "Name", "Expected", "Actual"],
                    "rows": rows(found),
                }
            ],
        }
    )
    report = render_markdown(doc)
    assert not any(
        line.lstrip().startswith(("missing table forged", "no drift", "unexpected x"))
        for line in report.splitlines()
    )
    assert (
        "| unexpected | x\\\\n    missing table forged | absent (not in the manifest) | present |"
        in report
    )
    assert not {"\x1b", "\r", "\u202e"} & set(report)
    assert "forged" in render_html(doc)


def test_describe_escapes_every_control_character() -> None:
    d = Difference("changed", "view", "v\x00\t", "select '\r'", "select '\x85'")
    assert d.describe() == "changed view v\\x00\\t: select [-'\\r'-]{+'\\x85'+}"
    assert Difference("missing", "table", "a\\nb").describe() == "missing table a\\\\nb"


def test_report_text_and_cells_cannot_start_a_line() -> None:
    """Whatever a summary or a cell holds, the report keeps it on its line."""
    doc = results(verdict="FAIL")
    doc["checks"][0].update(
        status="failed",
        summary="a\n## Verdict: PASS\rb \x1b[2K\u2028c",
        evidence=[
            {
                "title": "t",
                "content": "",
                "kind": "table",
                "columns": ["Name"],
                "rows": [["x\r| forged | row |\x1b[0m"]],
            }
        ],
    )
    report = render_markdown(doc)
    assert "## Verdict: PASS" not in report.replace("a ## Verdict: PASS\\rb", "")
    assert "a ## Verdict: PASS\\rb \\x1b[2K\\u2028c" in report
    assert "| x\\r\\| forged \\| row \\|\\x1b[0m |" in report
    assert not {"\x1b", "\r", "\u2028"} & set(report)

"""Fuzz every loader of user input: never a traceback, never an undocumented exit code.

Inputs are valid documents with a few mutations (the ones that reach deep into a loader),
drawn from fragments that broke loaders before (tags with bad values, aliases, huge
numbers, NUL bytes, deep nesting) and from random text and bytes. The runs are
derandomized, so CI sees the same examples every time; test_bad_input.py keeps one
explicit case for each problem found.
"""

from __future__ import annotations

import copy
import json
import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from persistaudit.cli import main
from persistaudit.config import load_config
from persistaudit.exceptions import PersistauditError
from tests.helpers import GOOD_CONFIG, MANIFEST, REPO

GOLDEN = REPO / "tests" / "golden"
NOTES_MANIFEST = (REPO / "expected" / "notes-app.yaml").read_text()

FUZZ = settings(
    derandomize=True,  # the same examples on every run: CI stays deterministic
    database=None,
    deadline=None,
    max_examples=300,  # the whole file runs in about 30 s
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# Fragments that made a loader fail before, and YAML's other sharp edges.
YAML_FRAGMENTS = [
    "!!int x",
    "!!bool maybe",
    "!!timestamp nope",
    "!!float x",
    "!!binary '@@'",
    "!!set {a}",
    "!!omap 3",
    "!!str",
    "!!python/object/apply:os.system ['true']",
    "!custom x",
    "&a ",
    "*a",
    "&r [*r]",
    "<<: *a",
    "9" * 5000,
    "-" + "1" * 4400,
    '"\\0"',
    '"\\x00a"',
    "[" * 120,
    "]",
    "{",
    "}",
    ": ",
    "- ",
    "? ",
    "|\n",
    "---\n",
    "...\n",
    "%YAML 1.1\n",
    "\t",
    "\ufeff",
    "${UNSET_VARIABLE}",
    "${HOME:-x}",
    "'",
    '"',
    "#",
    "\n  ",
    "\n- ",
    "1e999",
    ".nan",
    "-.inf",
    "0x_",
    "~",
    "2024-13-45",
    "{marker}",
    "{nope}",
    "/..",
    "\x85",
]


@st.composite
def mutated_text(draw: st.DrawFn, base: str) -> str:
    """base with a few fragments inserted, or spans replaced, at random places."""
    text = base
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(text)))
        cut = draw(st.integers(0, 12))
        piece = draw(st.one_of(st.sampled_from(YAML_FRAGMENTS), st.text(max_size=8)))
        text = text[:at] + piece + text[at + cut :]
    return text


def yaml_inputs(base: str) -> st.SearchStrategy[str]:
    return st.one_of(mutated_text(base), st.text(max_size=120))


def assert_one_line_exit(result: Any, allowed: set[int]) -> None:
    """No traceback; a documented exit code; an error is one persistaudit line on stderr."""
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise AssertionError(f"traceback: {result.exception!r}") from result.exception
    assert result.exit_code in allowed, (result.exit_code, result.output)
    if result.exit_code == 2:
        assert result.stderr.startswith("persistaudit: error: "), result.stderr
        assert result.stderr.count("\n") == 1, result.stderr


def invoke(*args: str) -> Any:
    return CliRunner().invoke(main, list(args))


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("fuzz")
    (folder / "manifest.yaml").write_text(MANIFEST)
    return folder


# -- config and manifest loaders -------------------------------------------------------------


@FUZZ
@given(text=yaml_inputs(GOOD_CONFIG))
def test_fuzz_config_loader(workdir: Path, text: str) -> None:
    path = workdir / "audit.yaml"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    try:
        load_config(path, environ={"HOME": "/root"})
    except PersistauditError as exc:  # the CLI shows it as one line, exit 2
        message = str(exc)
    else:
        return
    assert message.startswith(str(path)), message


@FUZZ
@given(text=yaml_inputs(NOTES_MANIFEST))
def test_fuzz_manifest_loader_through_diff(workdir: Path, text: str) -> None:
    path = workdir / "fuzzed.yaml"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    good = str(REPO / "expected" / "notes-app.yaml")
    assert_one_line_exit(invoke("diff", str(path), good), {0, 1, 2})
    assert_one_line_exit(invoke("diff", good, str(path), "--json"), {0, 1, 2})


# -- databases -------------------------------------------------------------------------------


def small_database(path: Path) -> bytes:
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA page_size = 512")
    conn.executescript(
        """
        CREATE TABLE users(id INTEGER PRIMARY KEY, email TEXT NOT NULL UNIQUE COLLATE NOCASE,
                           created TEXT DEFAULT (datetime('now')) CHECK (created <> ''));
        CREATE TABLE notes(id INTEGER PRIMARY KEY AUTOINCREMENT,
                           user_id INTEGER REFERENCES users(id) ON DELETE CASCADE,
                           body TEXT, tags TEXT GENERATED ALWAYS AS (json_array(body)) VIRTUAL);
        CREATE INDEX notes_user ON notes(user_id DESC) WHERE body IS NOT NULL;
        CREATE VIEW recent AS SELECT * FROM notes WHERE id > 10;
        CREATE TRIGGER touch AFTER UPDATE ON notes BEGIN UPDATE users SET created = 'x'; END;
        INSERT INTO users(email) VALUES ('a@example.com'), ('b@example.com');
        INSERT INTO notes(user_id, body) VALUES (1, 'hello'), (2, 'world');
        """
    )
    conn.commit()
    conn.close()
    return path.read_bytes()


@FUZZ
@given(data=st.data())
def test_fuzz_diff_with_a_database_file(workdir: Path, data: st.DataObject) -> None:
    base = small_database(workdir / "base.db") if not (workdir / "base.db").exists() else None
    raw = bytearray(base or (workdir / "base.db").read_bytes())
    for _ in range(data.draw(st.integers(1, 6))):
        at = data.draw(st.integers(0, len(raw) - 1))
        piece = data.draw(st.binary(min_size=1, max_size=8))
        raw[at : at + len(piece)] = piece
    if data.draw(st.booleans()):
        del raw[data.draw(st.integers(0, len(raw))) :]
    db = workdir / "fuzzed.db"
    db.write_bytes(bytes(raw))
    assert_one_line_exit(invoke("diff", str(workdir / "manifest.yaml"), str(db)), {0, 1, 2})


# -- results.json: report and compare --------------------------------------------------------

JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
    | st.sampled_from(["passed", "failed", "PASS", "log", "table", "x.y", "0" * 64]),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=6,
)


def slots(value: Any) -> Iterator[tuple[Any, Any]]:
    """Every (container, key) in a JSON document, for a mutation to pick from."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield value, key
            yield from slots(item)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield value, index
            yield from slots(item)


@st.composite
def mutated_json(draw: st.DrawFn, doc: Any) -> Any:
    """doc with a few values replaced, keys removed or keys added, anywhere in it."""
    doc = copy.deepcopy(doc)
    for _ in range(draw(st.integers(1, 3))):
        places = list(slots(doc))
        if not places:
            break
        container, key = draw(st.sampled_from(places))
        action = draw(st.sampled_from(["replace", "replace", "delete", "add"]))
        if action == "replace":
            container[key] = draw(JSON_VALUES)
        elif action == "delete":
            del container[key]
        elif isinstance(container, dict):
            container[draw(st.text(max_size=8))] = draw(JSON_VALUES)
        else:
            container.append(draw(JSON_VALUES))
    return doc


def results_files() -> st.SearchStrategy[bytes]:
    golden = [json.loads((GOLDEN / f"{n}.results.json").read_text()) for n in ("fail", "blocked")]
    as_json = st.one_of(*(mutated_json(doc) for doc in golden)).map(
        lambda d: json.dumps(d).encode()
    )
    return st.one_of(as_json, as_json, st.binary(max_size=64))


@FUZZ
@given(raw=results_files(), html=st.booleans())
def test_fuzz_report(workdir: Path, raw: bytes, html: bool) -> None:
    path = workdir / "results.json"
    path.write_bytes(raw)
    out = workdir / ("report.html" if html else "report.md")
    result = invoke("report", str(path), "-o", str(out), "--format", "html" if html else "md")
    assert_one_line_exit(result, {0, 2})


@FUZZ
@given(raw=results_files(), first=st.booleans())
def test_fuzz_compare(workdir: Path, raw: bytes, first: bool) -> None:
    path = workdir / "new.json"
    path.write_bytes(raw)
    good = str(GOLDEN / "fail.results.json")
    args = [str(path), good] if first else [good, str(path)]
    assert_one_line_exit(invoke("compare", *args), {0, 1, 2})


# -- signature.json and a signed folder: verify ----------------------------------------------


@pytest.fixture(scope="module")
def signed_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("signed")
    folder = base / "report"
    (folder / "evidence").mkdir(parents=True)
    shutil.copy(GOLDEN / "fail.results.json", folder / "results.json")
    (folder / "report.md").write_text("# report\n")
    (folder / "evidence" / "startup.log").write_text("ready\n")
    assert invoke("keygen", str(base / "key")).exit_code == 0
    result = invoke(
        "sign", str(folder), "--key", str(base / "key"), "--auditor", "A", "--role", "B"
    )
    assert result.exit_code == 0, result.output
    return folder


def base64_flips(text: str) -> st.SearchStrategy[str]:
    """The text with a character changed, added or removed (base64 fields)."""
    return st.tuples(
        st.integers(0, len(text)), st.sampled_from(["A", "/", "=", "\n", " ", ""])
    ).map(lambda t: text[: t[0]] + t[1] + text[t[0] + 1 :])


@FUZZ
@given(data=st.data())
def test_fuzz_verify(
    signed_folder: Path, tmp_path_factory: pytest.TempPathFactory, data: st.DataObject
) -> None:
    folder = tmp_path_factory.mktemp("verify") / "report"
    shutil.copytree(signed_folder, folder)
    doc = json.loads((folder / "signature.json").read_text())
    how = data.draw(st.sampled_from(["json", "signature", "public_key", "bytes", "file"]))
    if how == "json":
        text = json.dumps(data.draw(mutated_json(doc)))
    elif how in ("signature", "public_key"):
        text = json.dumps({**doc, how: data.draw(base64_flips(doc[how]))})
    elif how == "bytes":
        raw = bytearray(json.dumps(doc).encode())
        at = data.draw(st.integers(0, len(raw) - 1))
        raw[at] = data.draw(st.integers(0, 255))
        text = raw.decode("utf-8", "surrogateescape")
    else:
        text = json.dumps(doc)
        (folder / "evidence" / "startup.log").write_bytes(data.draw(st.binary(max_size=8)))
    (folder / "signature.json").write_bytes(text.encode("utf-8", "surrogateescape"))
    assert_one_line_exit(invoke("verify", str(folder)), {0, 1, 2})

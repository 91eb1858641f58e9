from __future__ import annotations

import json
import sqlite3
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from persistaudit.cli import main
from persistaudit.diff import diff
from persistaudit.exceptions import ConfigError
from persistaudit.manifest import dump_manifest, load_manifest
from persistaudit.schema import from_file, from_sql, from_sqlalchemy
from persistaudit.sqltext import normalize, normalize_type

DDL = """
-- a schema with every kind of object
CREATE TABLE users (
    id INTEGER PRIMARY KEY,
    email TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL DEFAULT 'member' CHECK (kind IN ('member', 'admin')),
    profile TEXT
) STRICT;
CREATE TABLE posts (
    id INTEGER NOT NULL,
    author INTEGER REFERENCES users ON DELETE CASCADE,
    body TEXT,
    score REAL GENERATED ALWAYS AS (length(body) * 1.0) VIRTUAL,
    PRIMARY KEY (id)
) WITHOUT ROWID;
CREATE INDEX ix_posts_author ON posts (author, id DESC) WHERE author IS NOT NULL;
CREATE UNIQUE INDEX ux_users_lower ON users (lower(email));
CREATE VIEW post_authors AS SELECT p.id, u.email FROM posts p JOIN users u ON u.id = p.author;
CREATE TRIGGER tr_posts AFTER DELETE ON users BEGIN DELETE FROM posts WHERE author = old.id; END;
CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL PRIMARY KEY);
INSERT INTO alembic_version VALUES ('4f2e1a');
PRAGMA user_version = 7;
"""


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def make_db(tmp_path: Path, sql: str, name: str = "app.db") -> Path:
    path = tmp_path / name
    conn = sqlite3.connect(path)
    conn.executescript(sql)
    conn.close()
    return path


def test_normalize_ignores_cosmetics_only() -> None:
    assert normalize("a  IN ( 'x' ,'y' ) -- note") == normalize("\"A\" in ('x', 'y')")
    assert normalize("[a] > 0") == normalize("`a`>0") == "a > 0"
    assert normalize("a = 'X'") != normalize("a = 'x'")  # literals are data
    assert normalize('"Weird Name" > 0') == '"Weird Name" > 0'
    assert normalize_type("varchar ( 20 )") == "VARCHAR(20)"


def test_snapshot_reads_every_kind_of_object(tmp_path: Path) -> None:
    m = from_file(make_db(tmp_path, DDL))
    users, posts = m.tables["users"], m.tables["posts"]
    assert users.strict
    assert posts.without_rowid
    assert users.unique == [["email"]]
    assert users.checks == ["kind in ('member', 'admin')"]
    kind = next(c for c in users.columns if c.name == "kind")
    assert (kind.type, kind.not_null, kind.default) == ("TEXT", True, "'member'")
    score = next(c for c in posts.columns if c.name == "score")
    assert score.generated == "virtual"
    [fk] = posts.foreign_keys
    assert (fk.columns, fk.table, fk.to, fk.on_delete) == (["author"], "users", ["id"], "CASCADE")
    assert m.indexes["ix_posts_author"].columns == ["author", "id desc"]
    assert m.indexes["ix_posts_author"].where == "author is not null"
    assert m.indexes["ux_users_lower"].unique
    assert m.indexes["ux_users_lower"].columns == ["lower(email)"]
    assert m.views["post_authors"].sql.startswith("select p.id, u.email from posts p join")
    assert m.triggers["tr_posts"].table == "users"
    assert (m.user_version, m.alembic_revision) == (7, "4f2e1a")


def test_from_sql_equals_the_database_built_from_it(tmp_path: Path) -> None:
    sql = write(tmp_path, "schema.sql", DDL)
    assert diff(from_sql(sql), from_file(make_db(tmp_path, DDL))) == []


def test_snapshot_never_writes_to_the_database(tmp_path: Path) -> None:
    db = make_db(tmp_path, "PRAGMA journal_mode=WAL; CREATE TABLE t (a);")
    before = {p.name: p.stat().st_mtime_ns for p in tmp_path.iterdir()}
    from_file(db)
    assert {p.name: p.stat().st_mtime_ns for p in tmp_path.iterdir()} == before


def test_dump_is_sorted_and_stable(tmp_path: Path) -> None:
    m = from_file(make_db(tmp_path, DDL))
    text = dump_manifest(m)
    assert text.index("  posts:") < text.index("  users:")
    assert dump_manifest(load_manifest(write(tmp_path, "m.yaml", text))) == text


def test_from_sqlalchemy_equals_create_all(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("sqlalchemy")
    (tmp_path / "models_demo.py").write_text(
        "from sqlalchemy import CheckConstraint, ForeignKey, Index, String\n"
        "from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column\n"
        "class Base(DeclarativeBase):\n    pass\n"
        "class Agent(Base):\n"
        "    __tablename__ = 'agents'\n"
        "    id: Mapped[int] = mapped_column(primary_key=True)\n"
        "    namespace: Mapped[str] = mapped_column(String(64))\n"
        "    __table_args__ = (CheckConstraint(\"namespace <> ''\"), Index('ix_ns', 'namespace'))\n"
        "class Task(Base):\n"
        "    __tablename__ = 'tasks'\n"
        "    id: Mapped[int] = mapped_column(primary_key=True)\n"
        "    agent_id: Mapped[int] = mapped_column(ForeignKey('agents.id', ondelete='CASCADE'))\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    import sqlalchemy

    models = from_sqlalchemy("models_demo:Base")
    assert sorted(models.tables) == ["agents", "tasks"]
    namespace = models.tables["agents"].columns[1]
    assert (namespace.type, namespace.not_null) == ("VARCHAR(64)", True)
    db = tmp_path / "made.db"
    engine = sqlalchemy.create_engine(f"sqlite:///{db}")
    sys.modules["models_demo"].Base.metadata.create_all(engine)
    engine.dispose()
    assert diff(models, from_file(db)) == []


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("nocolon", "expected package.module:attribute"),
        ("no_such_module_x:Base", "cannot import no_such_module_x"),
        ("json:dumps", "not a MetaData or declarative Base"),
        ("json:nope", "json has no attribute nope"),
    ],
)
def test_from_sqlalchemy_bad_specs(spec: str, message: str) -> None:
    pytest.importorskip("sqlalchemy")
    with pytest.raises(ConfigError, match=message):
        from_sqlalchemy(spec)


def cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.output


def test_cli_snapshot_and_diff(tmp_path: Path) -> None:
    db = make_db(tmp_path, DDL)
    manifest = tmp_path / "expected.yaml"
    code, _ = cli("snapshot", str(db), "-o", str(manifest))
    assert code == 0
    assert cli("diff", str(manifest), str(db)) == (0, f"no drift: {db} matches {manifest}\n")
    code, out = cli("snapshot", "--from-sql", str(write(tmp_path, "s.sql", DDL)))
    assert code == 0
    assert out == manifest.read_text()
    drifted = make_db(tmp_path, DDL.replace("    profile TEXT\n", "    profile INTEGER\n"), "b.db")
    code, out = cli("diff", str(manifest), str(drifted), "--json")
    assert code == 1
    doc = json.loads(out)
    assert doc == {
        "drift": True,
        "differences": [
            {"kind": "changed", "object": "column", "name": "users.profile",
             "expected": {"type": "TEXT"}, "actual": {"type": "INTEGER"}}
        ],
    }  # fmt: skip
    code, out = cli("diff", str(manifest), str(drifted))
    assert code == 1
    assert "  users\n    changed column users.profile: type: expected TEXT, found INTEGER\n" in out


def test_cli_snapshot_keeps_hand_written_annotations(tmp_path: Path) -> None:
    db = make_db(tmp_path, DDL)
    manifest = tmp_path / "expected.yaml"
    cli("snapshot", str(db), "-o", str(manifest))
    text = manifest.read_text().replace(
        "{name: profile, type: TEXT}", "{name: profile, type: TEXT, json_valid: true}"
    )
    manifest.write_text(
        text.replace("manifest_version: 1\n", "manifest_version: 1\noptions: {min_tables: 2}\n")
    )
    cli("snapshot", str(db), "-o", str(manifest))
    again = load_manifest(manifest)
    assert again.options.min_tables == 2
    assert next(c for c in again.tables["users"].columns if c.name == "profile").json_valid


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "the database file is empty (0 bytes)"),
        (b"PK\x03\x04 not a database at all" * 20, "not a SQLite database"),
        (b"\x8a\x1f" * 2048, "not a SQLite database (wrong header; encrypted or corrupt?)"),
        (b"SQLite format 3\x00" + b"\xff" * 4000, "cannot read the schema"),
    ],
    ids=["empty", "zip", "encrypted", "corrupt"],
)
def test_bad_database_files_are_one_line_exit_2(
    tmp_path: Path, content: bytes, message: str
) -> None:
    (tmp_path / "m.yaml").write_text("manifest_version: 1\ntables: {}\n")
    (tmp_path / "x.db").write_bytes(content)
    for args in (
        ("snapshot", str(tmp_path / "x.db")),
        ("diff", str(tmp_path / "m.yaml"), str(tmp_path / "x.db")),
    ):
        code, out = cli(*args)
        assert code == 2, out
        assert message in out
        assert out.count("\n") == 1


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("manifest_version: 1\ntables: {a: {columns: [\n", r"m.yaml:\d+:\d+: malformed YAML"),
        (
            "manifest_version: 1\ntables: {a: {colour: red}}\n",
            r"m.yaml:2: tables.a.colour: unknown field",
        ),
        ("manifest_version: 3\ntables: {}\n", "manifest_version 3 is not supported"),
        ("tables: {}\n", "manifest_version: missing"),
        (
            "manifest_version: 1\ntables:\n  a:\n    columns:\n"
            "    - {name: x}\n    - {name: y, pk: one}\n",
            r"m.yaml:6: tables.a.columns.1.pk: expected `int`, got `str`",
        ),
        (
            "manifest_version: 1\ntables:\n  a: {}\nindexes:\n  ix: {columns: [x]}\n",
            r"m.yaml:5: indexes.ix: object missing required field `table`",
        ),
        (
            "manifest_version: 1\noptions: {min_tables: -1}\ntables: {}\n",
            r"m.yaml:2: options.min_tables: expected `int` >= 0",
        ),
        (
            "manifest_version: 1\ntables: {a: {}, A: {}}\n",
            r"m.yaml:1: tables 'a' and 'A' are one name in SQLite",
        ),
        (
            "manifest_version: 1\ntables:\n"
            "  a: {unique_collations: [{columns: [x], collations: {}}]}\n",
            r"m.yaml:3: tables.a: unique_collations names UNIQUE\(x\), which is not in unique",
        ),
    ],
)
def test_bad_manifests_are_one_line_exit_2(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "m.yaml").write_text(text)
    db = make_db(tmp_path, "CREATE TABLE a (x);")
    code, out = cli("diff", str(tmp_path / "m.yaml"), str(db))
    assert code == 2
    assert pytest.importorskip("re").search(message, out), out
    assert out.count("\n") == 1


def test_snapshot_needs_exactly_one_source(tmp_path: Path) -> None:
    code, out = cli("snapshot")
    assert code == 2
    assert "give exactly one of SOURCE, --from-sql or --from-sqlalchemy" in out

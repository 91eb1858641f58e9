"""A database's header and companion files, and copies that keep the last committed state."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from persistaudit import constraints, schema
from persistaudit.exceptions import SnapshotError
from persistaudit.manifest import Column, Manifest, Table
from persistaudit.sqlite_files import (
    HEADER_SIZE,
    MAGIC,
    copy_database,
    database_files,
    parse_header,
    read_header,
)

ROWS = 400


def committed(path: Path, journal: str) -> Path:
    """A database of ROWS valid JSON documents, all committed, in the given journal mode."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute(f"PRAGMA journal_mode = {journal}")
    conn.execute("CREATE TABLE docs (id INTEGER PRIMARY KEY, body TEXT)")
    for i in range(80):  # a schema of several pages: the one holding docs can be spilled
        conn.execute(f"CREATE TABLE pad_{i} ({', '.join(f'column_{c} TEXT' for c in 'abcdefgh')})")
    conn.execute(
        f"WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r LIMIT {ROWS})"
        " INSERT INTO docs (body) SELECT json_object('n', n, 'pad', hex(randomblob(200))) FROM r"
    )
    conn.close()
    return path


def killed_mid_write(path: Path) -> Path:
    """path with a hot rollback journal: a writer SIGKILLed before its COMMIT.

    With a one-page cache the writer spills its uncommitted pages into the main file (their
    originals go to the -journal first), so the main file alone shows a column and rows that
    were never committed.
    """
    child = (
        "import os, signal, sqlite3, sys\n"
        "conn = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
        "conn.execute('PRAGMA cache_size = 1')\n"
        "conn.execute('BEGIN')\n"
        "conn.execute('ALTER TABLE docs ADD COLUMN uncommitted')\n"
        "conn.execute(\"UPDATE docs SET body = 'uncommitted ' || body\")\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    done = subprocess.run([sys.executable, "-c", child, str(path)], check=False)
    assert done.returncode == -signal.SIGKILL
    assert Path(f"{path}-journal").stat().st_size > 0
    return path


def torn(tmp_path: Path) -> Path:
    db = killed_mid_write(committed(tmp_path / "app.db", "delete"))
    # The premise: read without its journal, the main file shows the uncommitted write.
    bare = tmp_path / "bare.db"
    bare.write_bytes(db.read_bytes())
    columns, rows, bad = state(bare)
    assert (columns, rows) == (["id", "body", "uncommitted"], ROWS)
    assert bad > ROWS // 2
    return db


def state(path: Path) -> tuple[list[str], int, int]:
    """The columns of docs, its rows, and those not valid JSON, as SQLite opens the file."""
    conn = sqlite3.connect(path)
    try:
        columns = [r[1] for r in conn.execute("PRAGMA table_info(docs)")]
        rows, bad = conn.execute(
            "SELECT count(*), count(*) FILTER (WHERE NOT json_valid(body)) FROM docs"
        ).fetchone()
    finally:
        conn.close()
    return columns, rows, bad


def test_the_constraint_probes_copy_keeps_a_hot_journal(tmp_path: Path) -> None:
    db = torn(tmp_path)
    docs = Table(columns=[Column(name="body", json_valid=True)])
    manifest = Manifest(manifest_version=1, tables={"docs": docs})
    probes = constraints.probe(db, manifest)
    assert [(p.target, p.outcome, p.detail) for p in probes] == [
        ("docs.body", "ok", "every value is valid JSON")  # not the rows the writer never committed
    ]
    assert Path(f"{db}-journal").stat().st_size > 0  # the probed file is left as it was


def test_a_manifest_read_from_a_file_shows_its_last_committed_schema(tmp_path: Path) -> None:
    db = torn(tmp_path)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    columns = [c.name for c in schema.from_file(db).tables["docs"].columns]
    assert columns == ["id", "body"]  # never the uncommitted column
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before  # nothing written


def test_copy_database_keeps_a_hot_journal(tmp_path: Path) -> None:
    db = torn(tmp_path)
    copy = tmp_path / "copy" / "snap.db"
    copy.parent.mkdir()
    copied = copy_database(db, copy)
    journal = Path(f"{db}-journal")
    assert copied == {"app.db": db.stat().st_size, "app.db-journal": journal.stat().st_size}
    assert state(copy) == (["id", "body"], ROWS, 0)


def test_copy_database_of_a_wal_database_keeps_its_committed_wal(tmp_path: Path) -> None:
    db = committed(tmp_path / "app.db", "wal")
    writer = sqlite3.connect(db, isolation_level=None)  # held open: no checkpoint at close
    try:
        writer.execute("PRAGMA wal_autocheckpoint = 0")
        writer.execute("UPDATE docs SET body = json_object('n', id)")
        assert Path(f"{db}-wal").stat().st_size > 0
        Path(f"{db}-journal").write_bytes(b"stray")  # not a companion of a WAL database
        copy = tmp_path / "copy.db"
        assert set(copy_database(db, copy)) == {"app.db", "app.db-wal", "app.db-shm"}
        tables, rows, bad = state(copy)
        assert (tables, rows, bad) == (["id", "body"], ROWS, 0)
        conn = sqlite3.connect(copy)
        assert conn.execute("SELECT body FROM docs WHERE id = 7").fetchone() == ('{"n":7}',)
        conn.close()
    finally:
        writer.close()


def test_copy_database_replaces_stale_companions_at_the_destination(tmp_path: Path) -> None:
    db = committed(tmp_path / "app.db", "delete")
    other = killed_mid_write(committed(tmp_path / "other.db", "delete"))
    copy = tmp_path / "copy.db"
    Path(f"{copy}-journal").write_bytes(Path(f"{other}-journal").read_bytes())
    assert copy_database(db, copy) == {"app.db": db.stat().st_size}
    assert not Path(f"{copy}-journal").exists()
    assert state(copy) == (["id", "body"], ROWS, 0)


def test_database_files_follow_the_mode_in_the_header(tmp_path: Path) -> None:
    rollback = committed(tmp_path / "r.db", "delete")
    wal = committed(tmp_path / "w.db", "wal")
    for path in (rollback, wal):
        for suffix in ("-wal", "-shm", "-journal"):
            Path(f"{path}{suffix}").write_bytes(b"x")
    assert [p.name for p in database_files(rollback)] == ["r.db", "r.db-journal"]
    assert [p.name for p in database_files(wal)] == ["w.db", "w.db-wal", "w.db-shm"]
    assert read_header(rollback).companions == ("-journal",)
    assert read_header(wal).companions == ("-wal", "-shm")


def test_the_header_is_read_into_its_fields(tmp_path: Path) -> None:
    path = tmp_path / "h.db"
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA page_size = 65536")
    conn.execute("PRAGMA encoding = 'UTF-16le'")
    conn.execute("PRAGMA user_version = 42")
    conn.execute("PRAGMA application_id = 1886544244")
    conn.execute("CREATE TABLE t (a)")
    conn.close()
    header = read_header(path)
    assert header.page_size == 65536
    assert (header.write_version, header.read_version, header.wal) == (1, 1, False)
    assert header.text_encoding == "UTF-16le"
    assert (header.user_version, header.application_id) == (42, 1886544244)
    assert header.page_count == path.stat().st_size // 65536 == 2


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "the database file is empty (0 bytes)"),
        (b"\x8a\x1f" * 2048, "not a SQLite database (wrong header; encrypted or corrupt?)"),
        (MAGIC + bytes(20), "not a SQLite database (its header is cut short at 36 bytes)"),
    ],
)
def test_a_file_that_is_no_database_is_named(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "x.db"
    path.write_bytes(content)
    with pytest.raises(SnapshotError) as err:
        read_header(path)
    assert str(err.value) == f"{path}: {message}"
    assert parse_header(content) is None


def test_parse_header_is_lenient_about_values_sqlite_refuses() -> None:
    header = parse_header(MAGIC + b"\xff\xff" + bytes(HEADER_SIZE - 18))
    assert header is not None
    assert header.page_size == 0xFFFF
    assert (header.write_version, header.text_encoding, header.page_count) == (0, "", 0)

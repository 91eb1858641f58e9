"""The copy's fingerprint, and the work it saves: byte-identical copies are read once and
compared without a row-by-row scan, and one changed row always shows, whatever its size."""

from __future__ import annotations

import shutil
import sqlite3
import tarfile
from dataclasses import replace
from pathlib import Path

import pytest

from persistaudit import inspect, rowdiff
from persistaudit.inspect import DatabaseFacts, inspect_snapshot
from persistaudit.retention import TableKinds, compare_copies
from persistaudit.snapshot import Snapshot, take_snapshot
from tests.unit.test_snapshot_stream import FakeContainer, chunks, tar_of

SCHEMA = """
CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT);
CREATE TABLE tags (note_id INTEGER, tag TEXT);
INSERT INTO notes VALUES (1, 'aaaa'), (2, 'bbbb'), (3, 'cccc');
INSERT INTO tags VALUES (1, 'x'), (2, 'y');
"""


def make(path: Path, sql: str) -> Path:
    conn = sqlite3.connect(path)
    conn.executescript(sql)
    conn.commit()
    conn.close()
    return path


def snapshot_of(db: Path, dest: Path) -> Snapshot:
    """take_snapshot of db from a fake container whose archive holds db's bytes."""
    data = db.read_bytes()
    box = FakeContainer({"/data/app.db": lambda: chunks(tar_of(("app.db", data, tarfile.REGTYPE)))})
    return take_snapshot(box, "/data/app.db", dest, max_size=10**9)  # type: ignore[arg-type]


def test_byte_identical_copies_share_a_fingerprint_and_are_read_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = make(tmp_path / "live.db", SCHEMA)
    first, second = snapshot_of(db, tmp_path / "1"), snapshot_of(db, tmp_path / "2")
    assert first.fingerprint
    assert first.fingerprint == second.fingerprint
    facts = inspect_snapshot(first)

    def no_second_read(path: Path, limits: object = None) -> DatabaseFacts:
        raise AssertionError("an identical copy was read again")

    monkeypatch.setattr(inspect, "inspect_database", no_second_read)
    again = inspect_snapshot(second, previous=facts)
    assert again.path == str(second.path)
    assert again.fingerprint == facts.fingerprint
    assert facts.reused == ()
    assert sorted(again.reused) == sorted(facts.data)  # every table, for the audit's log
    assert {n: t.digest for n, t in again.data.items()} == {
        n: t.digest for n, t in facts.data.items()
    }


def test_one_changed_row_of_the_same_size_is_never_hidden(tmp_path: Path) -> None:
    """The shortcut keys on every byte: a row changed in place, same length, same file size."""
    before_db = make(tmp_path / "before.db", SCHEMA)
    after_db = tmp_path / "after.db"
    shutil.copyfile(before_db, after_db)
    make(after_db, "UPDATE notes SET body = 'bbbc' WHERE id = 2;")
    assert before_db.stat().st_size == after_db.stat().st_size
    before, after = snapshot_of(before_db, tmp_path / "1"), snapshot_of(after_db, tmp_path / "2")
    assert before.fingerprint != after.fingerprint
    old = inspect_snapshot(before)
    new = inspect_snapshot(after, previous=old)
    assert new.data["notes"].digest != old.data["notes"].digest
    assert new.data["tags"].digest == old.data["tags"].digest
    result = compare_copies(before.path, after.path, old, new, TableKinds())
    notes = next(t for t in result.tables if t.name == "notes")
    assert (notes.lost, notes.changed, notes.added) == (0, 1, 0)
    assert notes.changed_keys == ("2",)


def test_identical_copies_are_compared_without_reading_their_rows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = make(tmp_path / "live.db", SCHEMA)
    before, after = snapshot_of(db, tmp_path / "1"), snapshot_of(db, tmp_path / "2")
    old = inspect_snapshot(before)
    new = inspect_snapshot(after, previous=old)
    unknown = replace(new, fingerprint="", page_digests={})  # nothing says they are alike
    full = compare_copies(before.path, after.path, old, unknown, TableKinds())

    def no_scan(conn: object, table: str) -> rowdiff.RowChanges:
        raise AssertionError(f"the rows of {table} were compared")

    monkeypatch.setattr(rowdiff, "compare_rows", no_scan)
    quick = compare_copies(before.path, after.path, old, new, TableKinds())
    assert quick == full
    assert [(t.name, t.identity, t.rows_before, t.lost) for t in quick.tables] == [
        ("notes", "primary key (id)", 3, 0),
        ("tags", "rowid", 2, 0),
    ]


def test_facts_stopped_by_a_limit_are_not_reused(tmp_path: Path) -> None:
    db = make(tmp_path / "live.db", SCHEMA)
    first, second = snapshot_of(db, tmp_path / "1"), snapshot_of(db, tmp_path / "2")
    facts = inspect_snapshot(first)
    stopped = replace(facts, integrity_error="timed out")
    again = inspect_snapshot(second, previous=stopped)
    assert again.integrity_error == ""
    assert again.integrity_ok


def test_the_shm_is_left_out_because_sqlite_rebuilds_it(tmp_path: Path) -> None:
    """A copy with a stale -shm shows every committed row: the -shm never decides content."""
    live = tmp_path / "live.db"
    conn = sqlite3.connect(live, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA wal_autocheckpoint = 0")
    conn.execute("CREATE TABLE t (x)")
    conn.execute("INSERT INTO t VALUES (0)")
    stale = (tmp_path / "live.db-shm").read_bytes()
    for i in range(1, 40):
        conn.execute("INSERT INTO t VALUES (?)", (i,))
    files = {s: (tmp_path / f"live.db{s}").read_bytes() for s in ("", "-wal", "-shm")}
    conn.close()
    copies = []
    for n, shm in enumerate((files["-shm"], stale)):
        box = FakeContainer(
            {
                f"/data/app.db{s}": lambda s=s, d=d: chunks(
                    tar_of((f"app.db{s}", d, tarfile.REGTYPE))
                )
                for s, d in {**files, "-shm": shm}.items()
            }
        )
        copies.append(take_snapshot(box, "/data/app.db", tmp_path / str(n), max_size=10**9))  # type: ignore[arg-type]
    assert copies[0].sha256["app.db-shm"] != copies[1].sha256["app.db-shm"]
    assert copies[0].fingerprint == copies[1].fingerprint
    for copy in copies:
        assert inspect.inspect_database(copy.path).data["t"].rows == 40


def test_a_copy_without_digests_has_no_fingerprint(tmp_path: Path) -> None:
    snap = Snapshot(tmp_path / "app.db", "/data/app.db", {"app.db": 10}, 0.0)
    assert snap.fingerprint == ""

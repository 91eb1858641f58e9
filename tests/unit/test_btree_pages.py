"""Page digests: equal for a table whose pages and schema did not change, different for any
change SQLite would read; and a table is only spared its row digests on equal pages."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest

from persistaudit import btree_pages, inspect
from persistaudit.inspect import inspect_database
from persistaudit.retention import TableKinds, compare_copies
from persistaudit.sqlite_guard import open_copy
from tests.helpers import write_sql

SCHEMA = (
    "CREATE TABLE keep (k INTEGER PRIMARY KEY, v TEXT, b BLOB);"
    "CREATE TABLE grow (k INTEGER PRIMARY KEY, v TEXT);"
    "CREATE INDEX grow_v ON grow(v);"
    "WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 2000)"
    " INSERT INTO keep SELECT i, 'row ' || i, randomblob(i % 7 * 1000) FROM c;"
    "INSERT INTO grow VALUES (1, 'one');"
)


def copy_of(db: Path, name: str) -> Path:
    target = db.with_name(name)
    shutil.copy(db, target)
    return target


@pytest.fixture
def db(tmp_path: Path) -> Path:
    """The service's database, with SCHEMA: each test copies it and changes it."""
    db = tmp_path / "a.db"
    write_sql(db, SCHEMA)
    return db


def digests(db: Path) -> dict[str, str]:
    assert btree_pages.checkpoint(db)
    conn = open_copy(db)
    try:
        return btree_pages.page_digests(conn, db)
    finally:
        conn.close()


def test_a_table_left_alone_keeps_its_digest_and_a_changed_one_does_not(
    db: Path,
) -> None:
    before = digests(copy_of(db, "before.db"))
    write_sql(db, "INSERT INTO grow VALUES (2, 'two')")
    after = digests(db)
    assert set(before) == {"keep", "grow"}  # tables only: no index, no sqlite_schema
    assert after["keep"] == before["keep"]
    assert after["grow"] != before["grow"]


@pytest.mark.parametrize(
    "change",
    [
        "UPDATE keep SET v = 'x' WHERE k = 1500",  # one value
        "UPDATE keep SET b = randomblob(6000) WHERE k = 6",  # a value on overflow pages
        "ALTER TABLE keep ADD COLUMN extra TEXT DEFAULT 'new'",  # rows read differently
        "DELETE FROM keep WHERE k = 2000",
    ],
)
def test_any_change_sqlite_would_read_changes_the_digest(db: Path, change: str) -> None:
    before = digests(copy_of(db, "before.db"))
    write_sql(db, change)
    assert digests(db)["keep"] != before["keep"]


def test_a_wal_copy_is_checkpointed_so_its_frames_count(tmp_path: Path) -> None:
    db = tmp_path / "w.db"
    write_sql(db, "PRAGMA journal_mode = WAL;" + SCHEMA)
    before = digests(copy_of(db, "before.db"))
    writer = sqlite3.connect(db)
    writer.execute("PRAGMA wal_autocheckpoint = 0")
    writer.execute("UPDATE keep SET v = 'in the wal' WHERE k = 3")
    writer.commit()
    wal = db.with_name("w.db-wal")
    taken = tmp_path / "taken"
    taken.mkdir()
    shutil.copy(db, taken / "w.db")  # a snapshot: the file and its -wal, frames not applied
    shutil.copy(wal, taken / "w.db-wal")
    writer.close()
    copy = taken / "w.db"
    conn = open_copy(copy)
    try:
        assert btree_pages.page_digests(conn, copy) == {}  # frames the file lacks: no digests
    finally:
        conn.close()
    assert digests(copy)["keep"] != before["keep"]
    left = taken / "w.db-wal"
    assert not left.exists() or left.stat().st_size == 0  # applied to the file


def test_without_dbstat_there_are_no_digests_and_nothing_is_reused(
    db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = inspect_database(copy_of(db, "first.db"))
    monkeypatch.setattr(btree_pages, "_digests", _no_dbstat)
    again = inspect_database(copy_of(db, "again.db"), previous=first)
    assert again.page_digests == {}
    assert again.reused == ()
    assert again.data["keep"].digest == first.data["keep"].digest


def _no_dbstat(conn: sqlite3.Connection, path: Path) -> dict[str, str]:
    conn.execute("SELECT * FROM no_such_dbstat")
    raise AssertionError("unreachable")


def test_a_damaged_page_is_never_taken_for_the_healthy_one(db: Path) -> None:
    first = inspect_database(copy_of(db, "first.db"))
    data = bytearray(db.read_bytes())
    data[4096 : 4096 + 200] = b"\xff" * 200  # the root page of table keep overwritten
    damaged = db.with_name("damaged.db")
    damaged.write_bytes(bytes(data))
    assert btree_pages.checkpoint(damaged)
    facts = inspect_database(damaged, previous=first)
    assert "keep" not in facts.reused
    assert not facts.integrity_ok
    assert "malformed" in facts.data["keep"].error  # as without a previous copy
    assert facts.data["keep"] is not first.data["keep"]


def test_row_digests_are_reused_only_for_tables_whose_pages_did_not_change(
    db: Path,
) -> None:
    first = inspect_database(copy_of(db, "first.db"))
    write_sql(db, "INSERT INTO grow VALUES (2, 'two')")
    again = inspect_database(copy_of(db, "again.db"), previous=first)
    assert again.reused == ("keep",)
    assert again.data["keep"] is first.data["keep"]
    whole = inspect_database(copy_of(db, "whole.db"))  # read in full: the same facts
    assert {n: (t.rows, t.digest) for n, t in again.data.items()} == {
        n: (t.rows, t.digest) for n, t in whole.data.items()
    }
    assert again.data["grow"].rows == 2


def test_a_table_unverified_before_is_read_again_even_with_equal_pages(
    db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = inspect.TableRows._table_data

    def stopped(self: inspect.TableRows, name: str) -> inspect.TableData:
        data = real(self, name)
        return inspect.TableData(name, 0, "", data.row_hashes, "row digests of keep: timed out")

    monkeypatch.setattr(inspect.TableRows, "_table_data", stopped)
    first = inspect_database(copy_of(db, "first.db"))
    assert first.data["keep"].error  # read now, while the limit is faked
    monkeypatch.setattr(inspect.TableRows, "_table_data", real)
    again = inspect_database(copy_of(db, "again.db"), previous=first)
    assert "keep" in again.reused  # the same pages, but their digests were never read whole
    assert again.data["keep"].rows == 2000
    assert not again.data["keep"].error


def test_retention_compares_rows_of_changed_tables_and_spares_the_others(
    db: Path,
) -> None:
    before_path = copy_of(db, "before.db")
    before = inspect_database(before_path)
    write_sql(db, "DELETE FROM grow WHERE k = 1; INSERT INTO grow VALUES (5, 'five')")
    after_path = copy_of(db, "after.db")
    after = inspect_database(after_path, previous=before)
    result = compare_copies(before_path, after_path, before, after, TableKinds())
    tables = {t.name: t for t in result.tables}
    assert (tables["keep"].rows_before, tables["keep"].lost) == (2000, 0)
    assert tables["grow"].lost == 1  # changed pages: compared row by row, the loss found
    assert (tables["grow"].added, tables["keep"].identity) == (1, "primary key (k)")

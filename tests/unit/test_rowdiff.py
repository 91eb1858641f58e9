"""Rows matched by identity: updated rows are changed, not lost; each table kind of identity."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from persistaudit.exceptions import QueryTimeout
from persistaudit.rowdiff import RowChanges, attached, compare_rows
from persistaudit.sqlite_guard import Limits


def make(path: Path, script: str) -> Path:
    conn = sqlite3.connect(path)
    conn.executescript(script)
    conn.commit()
    conn.close()
    return path


def changes(tmp_path: Path, before: str, after: str, table: str = "t", **kw: float) -> RowChanges:
    old = make(tmp_path / "before.db", before)
    new = make(tmp_path / "after.db", after)
    with attached(old, new, Limits(**kw)) as conn:
        return compare_rows(conn, table)


SEED = (
    "CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT, beat INTEGER);"
    "INSERT INTO t VALUES (1, 'a', 0), (2, 'b', 0), (3, 'c', 0);"
)


def test_an_updated_row_is_changed_not_lost(tmp_path: Path) -> None:
    rc = changes(tmp_path, SEED, SEED + "UPDATE t SET beat = 9 WHERE id = 2;")
    assert (rc.lost, rc.changed, rc.added, rc.kept) == (0, 1, 0, 3)
    assert rc.changed_keys == ["2"]
    assert rc.identity == "primary key (id)"


def test_a_deleted_row_is_lost_and_named(tmp_path: Path) -> None:
    after = SEED + "DELETE FROM t WHERE id = 3; INSERT INTO t VALUES (7, 'x', 0);"
    rc = changes(tmp_path, SEED, after)
    assert (rc.lost, rc.changed, rc.added) == (1, 0, 1)
    assert rc.lost_keys == ["3"]


def test_a_reset_and_reseeded_table_shows_lost_rows(tmp_path: Path) -> None:
    before = SEED + "INSERT INTO t VALUES (4, 'user row', 0);"
    # Reset: the seed rows come back with new ids, the user's row is gone.
    after = (
        "CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT, beat INTEGER);"
        "INSERT INTO t VALUES (10, 'a', 0), (11, 'b', 0), (12, 'c', 0);"
    )
    rc = changes(tmp_path, before, after)
    assert (rc.lost, rc.added, rc.kept) == (4, 3, 0)


def test_composite_key_and_without_rowid(tmp_path: Path) -> None:
    ddl = "CREATE TABLE t (a TEXT, b INTEGER, v TEXT, PRIMARY KEY (a, b)) WITHOUT ROWID;"
    rc = changes(
        tmp_path,
        ddl + "INSERT INTO t VALUES ('x', 1, 'p'), ('x', 2, 'q');",
        ddl + "INSERT INTO t VALUES ('x', 1, 'P');",
    )
    assert (rc.lost, rc.changed, rc.added) == (1, 1, 0)
    assert rc.lost_keys == ["x, 2"]
    assert rc.changed_keys == ["x, 1"]
    assert rc.identity == "primary key (a, b)"


def test_no_key_matches_by_rowid(tmp_path: Path) -> None:
    ddl = "CREATE TABLE t (name TEXT, n INTEGER);"
    rc = changes(
        tmp_path,
        ddl + "INSERT INTO t VALUES ('a', 1), ('b', 2);",
        ddl + "INSERT INTO t VALUES ('a', 1), ('b', 3);",
    )
    assert rc.identity == "rowid"
    assert (rc.lost, rc.changed) == (0, 1)


def test_content_identity_counts_duplicates(tmp_path: Path) -> None:
    # A column named rowid shadows it and there is no key: only content identifies rows.
    ddl = "CREATE TABLE t (rowid TEXT, v INTEGER);"
    rc = changes(
        tmp_path,
        ddl + "INSERT INTO t VALUES ('a', 1), ('a', 1), ('b', NULL);",
        ddl + "INSERT INTO t VALUES ('a', 1), ('b', NULL), ('c', 5);",
    )
    assert rc.identity == "content"
    assert (rc.before, rc.after, rc.lost, rc.added) == (3, 3, 1, 1)


def test_nulls_and_blobs_compare_exactly(tmp_path: Path) -> None:
    ddl = "CREATE TABLE t (id INTEGER PRIMARY KEY, v);"
    rc = changes(
        tmp_path,
        ddl + "INSERT INTO t VALUES (1, NULL), (2, x'00ff'), (3, '1');",
        ddl + "INSERT INTO t VALUES (1, NULL), (2, x'00ff'), (3, 1);",
    )
    assert (rc.lost, rc.changed) == (0, 1)  # text '1' became integer 1
    assert rc.changed_keys == ["3"]


def test_a_new_column_is_skipped_not_a_change(tmp_path: Path) -> None:
    rc = changes(tmp_path, SEED, SEED + "ALTER TABLE t ADD COLUMN extra TEXT DEFAULT 'z';")
    assert (rc.lost, rc.changed) == (0, 0)
    assert rc.skipped_columns == ["extra"]


def test_hostile_table_and_column_names(tmp_path: Path) -> None:
    ddl = 'CREATE TABLE "t""; DROP TABLE x; --" ("i""d" INTEGER PRIMARY KEY, "v\nw" TEXT);'
    rc = changes(
        tmp_path,
        ddl + """INSERT INTO "t""; DROP TABLE x; --" VALUES (1, 'a');""",
        ddl + """INSERT INTO "t""; DROP TABLE x; --" VALUES (1, 'b');""",
        table='t"; DROP TABLE x; --',
    )
    assert rc.changed == 1


def test_a_slow_comparison_stops_at_the_deadline(tmp_path: Path) -> None:
    big = (
        "CREATE TABLE t (rowid TEXT, v TEXT); WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL "
        "SELECT i + 1 FROM c WHERE i < 300000) INSERT INTO t SELECT 'k', 'row ' || i FROM c;"
    )
    # Grouping 300,000 rows by content, twice, takes far longer than a millisecond.
    with pytest.raises(QueryTimeout, match="comparing rows of table t"):
        changes(tmp_path, big, big, query_timeout=0.001)

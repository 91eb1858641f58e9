"""Row digests in one streaming pass: memory bounded by the batch, not the table; a table
too large to keep its row digests is still compared by digests, by reading the copies again."""

from __future__ import annotations

import sqlite3
import threading
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import pytest

from persistaudit import btree_pages, digest, inspect, rowdiff
from persistaudit.exceptions import SnapshotError
from persistaudit.inspect import inspect_database
from persistaudit.retention import TableKinds, compare, compare_copies
from persistaudit.sqlite_guard import Limits, open_copy
from tests import hostile

MIB = 1024 * 1024
MANY = (
    "CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT, f REAL); WITH RECURSIVE c(i) AS "
    "(SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < {n}) "
    "INSERT INTO t SELECT i, 'row ' || i, i * 0.5 FROM c;"
)


def table(db: Path, name: str, keep: int = digest.KEEP_ROW_HASHES) -> digest.TableData:
    conn = open_copy(db)
    try:
        return digest.table_data(conn, name, keep_hashes=keep)
    finally:
        conn.close()


def test_a_large_table_is_digested_in_bounded_memory(make_db: Callable[..., Path]) -> None:
    db = make_db(MANY.format(n=30_000))
    tracemalloc.start()
    try:
        data = table(db, "t", keep=0)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert data.rows == 30_000
    assert not data.hashes_kept
    assert not data.row_hashes
    # Keeping 30,000 row digests would take about 3 MiB; the stream holds one batch.
    assert peak < MIB, f"peak Python allocations {peak / MIB:.1f} MiB"


def test_keeping_the_row_digests_does_not_change_the_table_digest(
    make_db: Callable[..., Path],
) -> None:
    db = make_db(MANY.format(n=500))
    kept, streamed = table(db, "t"), table(db, "t", keep=10)
    assert kept.hashes_kept
    assert sum(kept.row_hashes.values()) == 500
    assert not streamed.hashes_kept
    assert (kept.rows, kept.digest) == (streamed.rows, streamed.digest)


def test_text_that_is_no_utf8_is_digested_as_its_bytes(make_db: Callable[..., Path]) -> None:
    """The fast path reads text as str; bytes SQLite holds as TEXT but cannot decode still
    digest, and differently from the same bytes as a blob."""
    db = make_db("CREATE TABLE t (v);")
    conn = sqlite3.connect(db)
    conn.execute("INSERT INTO t VALUES (CAST(x'ff00fe' AS TEXT))")
    conn.commit()
    conn.close()
    other = make_db("CREATE TABLE t (v); INSERT INTO t VALUES (x'ff00fe');", "blob.db")
    data = table(db, "t")
    assert data.rows == 1
    assert not data.error
    assert data.digest != table(other, "t").digest


def test_the_per_database_budget_of_row_digests(
    make_db: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    db = make_db(MANY.format(n=30) + "CREATE TABLE u AS SELECT * FROM t;")
    monkeypatch.setattr(inspect, "ROW_HASHES_PER_DATABASE", 40)
    facts = inspect_database(db)
    assert facts.data["t"].hashes_kept  # 30 rows of the 40
    assert not facts.data["u"].hashes_kept  # 30 more would be over it


CHANGED = "UPDATE t SET v = 'changed' WHERE k = 7; DELETE FROM t WHERE k = 9;"


def by_digests(
    make_db: Callable[..., Path], monkeypatch: pytest.MonkeyPatch, keep: int
) -> tuple[int, int, str]:
    """Retention of t when rowdiff cannot read it, with keep row digests kept per database."""
    before = make_db(MANY.format(n=100), f"before-{keep}.db")
    after = make_db(MANY.format(n=100) + CHANGED, f"after-{keep}.db")
    monkeypatch.setattr(inspect, "ROW_HASHES_PER_DATABASE", keep)

    def unreadable(conn: object, name: str) -> rowdiff.RowChanges:
        raise SnapshotError(f"comparing rows of table {name}: database disk image is malformed")

    monkeypatch.setattr(rowdiff, "compare_rows", unreadable)
    old, new = inspect_database(before), inspect_database(after)
    t = compare_copies(before, after, old, new, TableKinds()).tables[0]
    return t.lost, t.added, t.identity


def test_a_table_too_large_to_keep_its_digests_is_compared_by_reading_again(
    make_db: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    in_memory = by_digests(make_db, monkeypatch, keep=10_000)
    read_again = by_digests(make_db, monkeypatch, keep=10)
    assert in_memory == read_again == (2, 1, "content digest")  # k=7 changed, k=9 deleted


def test_read_again_uses_scratch_space_beside_the_copy_and_leaves_none(
    make_db: Callable[..., Path],
) -> None:
    before = make_db(MANY.format(n=50), "before.db")
    after = make_db(MANY.format(n=50) + CHANGED, "after.db")
    listing = sorted(p.name for p in after.parent.iterdir())
    assert digest.kept_rows(before, after, "t") == 48
    assert sorted(p.name for p in after.parent.iterdir()) == listing


def test_without_the_copies_a_large_table_is_not_verified(
    make_db: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(inspect, "ROW_HASHES_PER_DATABASE", 10)
    old = inspect_database(make_db(MANY.format(n=100), "before.db"))
    new = inspect_database(make_db(MANY.format(n=100), "after.db"))
    result = compare(old, new)
    assert result.tables == []
    assert result.unverified == ["table t: too many rows to compare by digests without the copies"]


def test_text_that_is_no_utf8_beside_text_over_the_limit(make_db: Callable[..., Path]) -> None:
    """Both ways round: read as bytes, then streamed; the digest is that of the whole read."""
    db = make_db("CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT);")
    conn = sqlite3.connect(db)
    conn.execute("INSERT INTO t VALUES (1, CAST(x'ff00fe' AS TEXT))")
    conn.execute("INSERT INTO t VALUES (2, ?)", ("long " * (MIB // 2),))
    conn.commit()
    conn.close()
    whole = table(db, "t")
    small = open_copy(db, Limits(max_value_bytes=MIB))
    try:
        streamed = digest.table_data(small, "t")
    finally:
        small.close()
    assert (streamed.rows, streamed.digest) == (whole.rows, whole.digest) == (2, whole.digest)


def test_an_interrupt_while_digesting_stops_the_integrity_check_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """integrity_check runs in a second thread: Ctrl-C in the first ends it at once, not at
    its deadline, and nothing is left running."""
    db = hostile.slow_check(tmp_path / "slow.db", rows=30_000)  # integrity_check: ~30 s

    def interrupted(conn: object, path: object) -> object:
        time.sleep(0.2)  # the check is under way
        raise KeyboardInterrupt

    monkeypatch.setattr(btree_pages, "page_digests", interrupted)  # while the check runs
    started = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        inspect_database(db, Limits(query_timeout=60))
    assert time.monotonic() - started < 5
    assert not [t for t in threading.enumerate() if t.name == "integrity_check"]

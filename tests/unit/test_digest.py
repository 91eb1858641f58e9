"""Row digests: deterministic, equal for equal data, changed by any change, and computed in
bounded memory however large a value is."""

from __future__ import annotations

import hashlib
import marshal
import random
import sqlite3
import struct
import tracemalloc
from pathlib import Path

import pytest

from persistaudit import digest
from persistaudit.inspect import inspect_database
from persistaudit.sqlite_guard import Limits, open_copy
from tests import hostile

MIB = 1024 * 1024


def table(db: Path, name: str, limits: Limits | None = None) -> digest.TableData:
    conn = open_copy(db, limits)
    try:
        return digest.table_data(conn, name)
    finally:
        conn.close()


def make(path: Path, sql: str, *params: object) -> Path:
    conn = sqlite3.connect(path)
    conn.executescript(sql) if not params else conn.execute(sql, params)
    conn.commit()
    conn.close()
    return path


def row_hash(*fields: bytes) -> bytes:
    """A row's digest as digest.py documents it: marshal's version-2 tuple of its values."""
    return hashlib.sha256(b"(" + struct.pack("<i", len(fields)) + b"".join(fields)).digest()


def blob(value: bytes) -> bytes:
    return b"s" + struct.pack("<i", len(value)) + value


def integer(value: int) -> bytes:
    return b"i" + struct.pack("<i", value)


def text(value: str) -> bytes:
    data = value.encode()
    return b"u" + struct.pack("<i", len(data)) + data


def test_a_row_is_hashed_over_its_raw_typed_values(tmp_path: Path) -> None:
    db = make(
        tmp_path / "t.db",
        "CREATE TABLE t (i, f, s, b, n, big);"
        "INSERT INTO t VALUES (-7, 2.5, 'é', x'00ff', NULL, 1099511627776);",
    )
    data = table(db, "t")
    expected = row_hash(
        b"i" + struct.pack("<i", -7),
        b"g" + struct.pack("<d", 2.5),
        text("é"),
        blob(b"\x00\xff"),
        b"N",
        b"l" + struct.pack("<i", 3) + struct.pack("<3H", 0, 0, 1024),  # 2**40 in 15-bit digits
    )
    assert dict(data.row_hashes) == {expected: 1}
    assert data.rows == 1
    assert (
        expected
        == hashlib.sha256(marshal.dumps((-7, 2.5, "é", b"\x00\xff", None, 2**40), 2)).digest()
    )


VALUES = [
    0,
    -1,
    2**31 - 1,
    2**31,
    -(2**63),
    2**63 - 1,
    1.5,
    -0.0,
    None,
    "",
    "a",
    "é" * 300,
    b"",
    b"\x00",
    b"z" * 300,
]


def test_rows_written_by_hand_match_marshal_whatever_their_values() -> None:
    """The slow path (streamed values, text read as bytes) writes what marshal writes, so a
    row's digest does not depend on how it was read."""
    rng = random.Random(7)
    for _ in range(2000):
        row = tuple(rng.choice(VALUES) for _ in range(rng.randint(0, 6)))
        as_text = tuple(digest._Text(v.encode()) if isinstance(v, str) else v for v in row)
        assert digest._encode_row(row) == digest._encode_row(as_text) == marshal.dumps(row, 2)


def test_a_row_of_text_that_is_no_utf8_leaves_the_other_rows_digests_alone(
    tmp_path: Path,
) -> None:
    """One undecodable value makes the whole table read as bytes: every other row must still
    digest as it did when the table was read as str."""
    good = make(tmp_path / "good.db", "CREATE TABLE t (v, w); INSERT INTO t VALUES ('é', 1);")
    bad = make(tmp_path / "bad.db", "CREATE TABLE t (v, w); INSERT INTO t VALUES ('é', 1);")
    conn = sqlite3.connect(bad)
    conn.execute("INSERT INTO t VALUES (CAST(x'ff00fe' AS TEXT), 2)")
    conn.commit()
    conn.close()
    before, after = table(good, "t"), table(bad, "t")
    assert after.rows == 2
    assert set(before.row_hashes) < set(after.row_hashes)


@pytest.mark.parametrize(
    ("one", "other"),
    [
        ("('ab', 'c')", "('a', 'bc')"),  # no collision by concatenation
        ("('x', NULL)", "(x'78', NULL)"),  # text is not the blob of its bytes
        ("(1, NULL)", "(1.0, NULL)"),
        ("(NULL, NULL)", "('', NULL)"),
        ("('', x'')", "(x'', '')"),
        ("(0.0, NULL)", "(-0.0, NULL)"),
    ],
)
def test_different_rows_never_share_a_digest(tmp_path: Path, one: str, other: str) -> None:
    a = make(tmp_path / "a.db", f"CREATE TABLE t (x, y); INSERT INTO t VALUES {one};")
    b = make(tmp_path / "b.db", f"CREATE TABLE t (x, y); INSERT INTO t VALUES {other};")
    assert table(a, "t").digest != table(b, "t").digest


def test_equal_data_gives_equal_digests_whatever_the_order_and_layout(tmp_path: Path) -> None:
    rows = "(1, 'one', x'01'), (2, 'two', NULL), (2, 'two', NULL)"
    a = make(tmp_path / "a.db", f"CREATE TABLE t (k, v, b); INSERT INTO t VALUES {rows};")
    b = make(
        tmp_path / "b.db",
        "PRAGMA page_size = 512; CREATE TABLE t (k, v, b);"
        "INSERT INTO t VALUES (2, 'two', NULL), (1, 'one', x'01'), (2, 'two', NULL);",
    )
    first, second = table(a, "t"), table(b, "t")
    assert first.digest == second.digest == table(a, "t").digest
    assert first.row_hashes == second.row_hashes
    assert first.rows == 3


def test_a_utf16_database_digests_text_like_a_utf8_one(tmp_path: Path) -> None:
    rows = "CREATE TABLE t (v); INSERT INTO t VALUES ('naïve'), ('日本');"
    utf8 = make(tmp_path / "a.db", rows)
    utf16 = make(tmp_path / "b.db", "PRAGMA encoding = 'UTF-16le';" + rows)
    assert table(utf8, "t").digest == table(utf16, "t").digest


def test_a_100_mib_blob_is_digested_in_bounded_memory(tmp_path: Path) -> None:
    size = 100 * MIB
    db = hostile.large_blob(tmp_path / "big.db", size, last_byte=1, text_after="after")
    tracemalloc.start()
    try:
        data = table(db, "files")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8 * MIB, f"peak Python allocations {peak / MIB:.1f} MiB: not streamed"
    expected = hashlib.sha256(b"(" + struct.pack("<i", 3) + b"i" + struct.pack("<i", 1))
    expected.update(b"s" + struct.pack("<i", size))
    expected.update(bytes(size - 1) + b"\x01")
    expected.update(text("after"))
    assert dict(data.row_hashes) == {expected.digest(): 1}


def test_one_changed_byte_in_a_large_blob_changes_the_digest(tmp_path: Path) -> None:
    size = 3 * MIB
    before = table(hostile.large_blob(tmp_path / "a.db", size, last_byte=1), "files")
    same = table(hostile.large_blob(tmp_path / "b.db", size, last_byte=1), "files")
    after = table(hostile.large_blob(tmp_path / "c.db", size, last_byte=2), "files")
    assert before.digest == same.digest
    assert before.digest != after.digest


def test_a_blob_streamed_or_read_whole_gives_the_same_digest(tmp_path: Path) -> None:
    """Just over CHUNK it is streamed; in a WITHOUT ROWID table it is read whole."""
    value = bytes(range(256)) * (digest.CHUNK // 256 + 7)
    rowid = make(tmp_path / "a.db", "CREATE TABLE t (k INTEGER PRIMARY KEY, v BLOB)")
    make(rowid, "INSERT INTO t VALUES (1, ?)", value)
    whole = make(tmp_path / "b.db", "CREATE TABLE t (k INTEGER PRIMARY KEY, v BLOB) WITHOUT ROWID")
    make(whole, "INSERT INTO t VALUES (1, ?)", value)
    assert table(rowid, "t").digest == table(whole, "t").digest


def test_without_blob_io_large_blobs_are_read_in_substr_chunks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Python 3.10 has no Connection.blobopen; the digest must not change."""
    db = hostile.large_blob(tmp_path / "a.db", 3 * MIB + 5, last_byte=9, text_after="z")
    streamed = table(db, "files")
    monkeypatch.setattr(digest, "HAS_BLOB_IO", False)
    monkeypatch.setattr(digest, "FALLBACK_CHUNK", MIB)
    assert table(db, "files").digest == streamed.digest


def test_text_longer_than_the_length_limit_is_streamed_too(tmp_path: Path) -> None:
    value = "ünïcode " * (MIB // 4)  # 2.5 MiB of UTF-8
    db = make(tmp_path / "a.db", "CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT)")
    make(db, "INSERT INTO t VALUES (1, ?)", value)
    whole = table(db, "t")
    small = table(db, "t", Limits(max_value_bytes=MIB))
    assert small.digest == whole.digest
    assert dict(whole.row_hashes) == {row_hash(integer(1), text(value)): 1}


def test_a_value_over_the_limit_that_cannot_be_streamed_is_unverified(tmp_path: Path) -> None:
    db = make(tmp_path / "a.db", "CREATE TABLE t (k INTEGER PRIMARY KEY, v) WITHOUT ROWID")
    make(db, "INSERT INTO t VALUES (1, zeroblob(?))", 2 * MIB)
    facts = inspect_database(db, Limits(max_value_bytes=MIB))
    assert facts.data["t"].error == (
        "row digests of table t: a value or expression is larger than 1.0 MiB, the limit on"
        " values read from a copy of the database"
    )


def test_columns_after_a_virtual_generated_one_are_digested_right(tmp_path: Path) -> None:
    """SQLite's blob I/O reads the wrong column past a VIRTUAL generated one: not used there."""
    value = b"\x07" * (digest.CHUNK + 1)
    db = make(
        tmp_path / "a.db",
        "CREATE TABLE t (k INTEGER PRIMARY KEY, g AS (k * 2) VIRTUAL, v BLOB, w BLOB)",
    )
    make(db, "INSERT INTO t (k, v, w) VALUES (1, ?, x'01')", value)
    data = table(db, "t")
    one, two = integer(1), integer(2)
    assert dict(data.row_hashes) == {row_hash(one, two, blob(value), blob(b"\x01")): 1}


def test_a_column_named_rowid_does_not_confuse_the_streaming(tmp_path: Path) -> None:
    value = b"\x05" * (digest.CHUNK + 3)
    db = make(tmp_path / "a.db", "CREATE TABLE t (rowid TEXT, v BLOB)")
    make(db, "INSERT INTO t VALUES ('r', ?)", value)
    assert dict(table(db, "t").row_hashes) == {row_hash(text("r"), blob(value)): 1}

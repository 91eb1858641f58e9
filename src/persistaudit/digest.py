"""Row digests of a table, computed streaming: what retention compares between two snapshots.

A row's digest is a sha256 over its raw values in marshal's version-2 form of a tuple: a
type tag per value, then a fixed-size integer or real, or (for text and blobs) a 4-byte
length and the bytes. That form is a serialization (it loads back), so no two different
rows give the same stream; version 2 has no back-references, so it depends on the values
alone; and marshal writes it in C, a few times faster than building it here per row. Rows
read another way (a streamed value, text that is no UTF-8) are written in the same form by
_encode_row, so a row's digest never depends on how it was read.

Blobs over CHUNK bytes are fed in chunks through SQLite's blob I/O, never read whole, so a
900 MB blob costs a megabyte of memory. Text is read whole up to the connection's length
limit; a table holding longer text is read again with every text value streamed. A table's
digest covers the multiset of its row digests (their sum, _Multiset), so rows are read in
one pass in any order and never held: memory stays bounded whatever the table's size.
Values come in batches of BATCH rows; text is read as str, decoded in C.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import marshal
import re
import sqlite3
import struct
import tempfile
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from hashlib import sha256
from pathlib import Path
from typing import Any

from persistaudit.exceptions import ValueTooLarge
from persistaudit.sqlite_guard import GuardedConnection, Limits, open_memory, reading

CHUNK = 1024 * 1024
BATCH = 16  # rows per fetch: values up to CHUNK are read whole, so at most 16 MiB a column
KEEP_ROW_HASHES = 20_000  # a table's row digests kept in memory up to this many rows
ROWID_NAMES = ("rowid", "_rowid_", "oid")
# Connection.blobopen exists from Python 3.11; before, large blobs are read with substr()
# in chunks of FALLBACK_CHUNK (SQLite loads the value for each, Python holds one chunk).
HAS_BLOB_IO = hasattr(sqlite3.Connection, "blobopen")
FALLBACK_CHUNK = 8 * CHUNK


@dataclass(frozen=True)
class TableData:
    """A table's rows as a multiset of row digests: what retention compares.

    error says why the content could not be read in full (a time or size limit); the
    digest and counts are then empty and mean nothing.
    """

    name: str
    rows: int
    digest: str
    row_hashes: Counter[bytes] = field(repr=False, compare=False)
    error: str = ""
    hashes_kept: bool = True  # False: too many rows to keep row_hashes; re-read to compare


class _Text(bytes):
    """A TEXT value as SQLite's UTF-8 bytes, told apart from a BLOB (and never decoded)."""


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


@dataclass(frozen=True)
class _Layout:
    """How a table is read: its columns, and which of them can be streamed by rowid."""

    columns: list[str]
    streamable: list[bool]
    rowid: str | None  # a name for the rowid that no column shadows; None without one


def _layout(conn: GuardedConnection, table: str) -> _Layout:
    info = [r for r in conn.execute(f"PRAGMA table_xinfo({_quote(table)})") if int(r[6]) != 1]
    columns = [str(r[1]) for r in info]
    names = {c.lower() for c in columns}
    rowid = next((n for n in ROWID_NAMES if n not in names), None)
    if rowid is not None:
        try:
            conn.execute(f"SELECT {rowid} FROM {_quote(table)} LIMIT 0").fetchall()
        except sqlite3.OperationalError:
            rowid = None  # WITHOUT ROWID
    sql = conn.execute(
        "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?", (table,)
    ).fetchone()
    virtual = sql is not None and re.match(r"\s*create\s+virtual\b", str(sql[0]), re.I)
    # SQLite's blob I/O finds the wrong column after a VIRTUAL generated one: none of those.
    can_stream = rowid is not None and not virtual and all(int(r[6]) != 2 for r in info)
    return _Layout(columns, [can_stream and int(r[6]) == 0 for r in info], rowid)


def table_data(
    conn: GuardedConnection, table: str, *, keep_hashes: int = KEEP_ROW_HASHES
) -> TableData:
    """Count and digest a table's rows, in bounded memory and under one deadline.

    The row digests themselves are kept (row_hashes) only for a table of at most keep_hashes
    rows; a larger one has hashes_kept False, and a comparison by digests reads it again
    (kept_rows). Raises QueryTimeout or ValueTooLarge when a limit stops it.
    """
    with conn.stage():
        layout = _layout(conn, table)
        utf8 = str(conn.execute("PRAGMA encoding").fetchone()[0]).upper() == "UTF-8"
        as_str = utf8
        while True:
            try:
                return _digest(conn, table, layout, keep_hashes, stream_text=False, as_str=as_str)
            except _NotUtf8:  # text that is no valid UTF-8: read as raw bytes instead
                as_str = False
            except ValueTooLarge:
                if not (any(layout.streamable) and utf8):
                    raise
                return _digest(conn, table, layout, keep_hashes, stream_text=True, as_str=False)


class _NotUtf8(Exception):
    """A TEXT value that is not valid UTF-8 (SQLite keeps whatever bytes it was given)."""


class _Multiset:
    """An order-free digest of a multiset of row digests, in constant memory.

    The sum of the row digests modulo 2**256 (with the row count): equal multisets give
    equal sums whatever the order. A crafted collision could only make two different
    contents look alike, which makes an audit say "nothing new" (never pass a check).
    """

    def __init__(self, keep: int) -> None:
        self.rows = 0
        self.total = 0
        self.keep = keep
        self.hashes: Counter[bytes] = Counter()
        self.kept = True

    def add(self, row_hashes: list[bytes]) -> None:
        self.rows += len(row_hashes)
        self.total += sum(map(_BIG_ENDIAN, row_hashes))
        if self.kept:
            if self.rows > self.keep:
                self.kept = False
                self.hashes = Counter()
            else:
                self.hashes.update(row_hashes)

    def data(self, table: str) -> TableData:
        total = (self.total % 2**256).to_bytes(32, "big")
        digest = hashlib.sha256(b"rows" + self.rows.to_bytes(8, "big") + total).hexdigest()
        return TableData(table, self.rows, digest, self.hashes, hashes_kept=self.kept)


def _digest(
    conn: GuardedConnection,
    table: str,
    layout: _Layout,
    keep: int,
    *,
    stream_text: bool,
    as_str: bool,
) -> TableData:
    found = _Multiset(keep)
    for batch in _hash_batches(conn, table, layout, stream_text=stream_text, as_str=as_str):
        found.add(batch)
    return found.data(table)


def row_hashes(
    conn: GuardedConnection,
    table: str,
    layout: _Layout | None = None,
    *,
    stream_text: bool = False,
    as_str: bool = False,
) -> Iterator[bytes]:
    """Each row's digest, one at a time (see the module's docstring for what is hashed)."""
    layout = layout or _layout(conn, table)
    for batch in _hash_batches(conn, table, layout, stream_text=stream_text, as_str=as_str):
        yield from batch


def _hash_batches(
    conn: GuardedConnection, table: str, layout: _Layout, *, stream_text: bool, as_str: bool
) -> Iterator[list[bytes]]:
    """The row digests of each batch of rows fetched.

    as_str reads text as Python str (decoded in C, then encoded: faster than a bytes
    subclass per value); it raises _NotUtf8 on text that is no valid UTF-8.
    """
    exprs: list[str] = []
    marks: list[str] = []
    for i, (column, streamable) in enumerate(zip(layout.columns, layout.streamable, strict=True)):
        q = _quote(column)
        if not streamable:
            exprs.append(q)
            continue
        big = f"(typeof({q}) = 'blob' AND length({q}) > {CHUNK})"
        text = f"typeof({q}) = 'text'" if stream_text else "0"
        exprs.append(f"CASE WHEN {big} OR {text} THEN NULL ELSE {q} END")
        marks.append(f"CASE WHEN {big} THEN 'B{i},' WHEN {text} THEN 'T{i},' ELSE '' END")
    rowid = layout.rowid or "NULL"
    # NULL when nothing is streamed, which is almost always: no text to convert per row.
    mark = f"nullif({' || '.join(marks)}, '')" if marks else "NULL"
    sql = f"SELECT {rowid}, {mark}, {', '.join(exprs)} FROM {_quote(table)}"
    saved = conn.text_factory
    conn.text_factory = str if as_str else _Text
    fast = as_str  # _Text is no str: marshal would refuse it
    dumps = marshal.dumps
    try:
        cursor = conn.execute(sql)
        while True:
            try:
                rows = cursor.fetchmany(BATCH)
            except sqlite3.OperationalError as exc:
                if as_str and "decode" in str(exc):
                    raise _NotUtf8(str(exc)) from None
                raise
            if not rows:
                return
            yield [
                sha256(dumps(row[2:], 2)).digest()
                if row[1] is None and fast
                else _streamed_row(conn, table, layout, row)
                for row in rows
            ]
    finally:
        conn.text_factory = saved


def _streamed_row(conn: GuardedConnection, table: str, layout: _Layout, row: Any) -> bytes:
    """The digest of a row read the slow way: values marked in row[1] are streamed (NULL in
    row[2:]), _Text is written as the str it stands for; the same bytes marshal would give."""
    rowid_value, marked, *values = row
    h = sha256()
    h.update(_TUPLE(b"(", len(values)))
    if marked is None:
        streamed: dict[int, str] = {}
    else:
        text = marked if isinstance(marked, str) else bytes(marked).decode()
        streamed = {int(m[1:]): m[0] for m in text.split(",") if m}
    for i, value in enumerate(values):
        if i in streamed:
            where = (layout.rowid, rowid_value)
            _feed_stream(conn, h, table, layout.columns[i], where, streamed[i])
        else:
            h.update(_encode_value(value))
    return h.digest()


_BIG_ENDIAN = functools.partial(int.from_bytes, byteorder="big")
_TUPLE = struct.Struct("<ci").pack  # marshal's TYPE_TUPLE, then the count
_SIZED = struct.Struct("<ci").pack  # marshal's TYPE_STRING or TYPE_UNICODE, then the length
_TAGS = {"B": b"s", "T": b"u"}  # streamed blob, streamed text: marshal's bytes and str


def _encode_value(value: Any) -> bytes:
    """One value as marshal's version 2 writes it; _Text (SQLite's UTF-8 bytes of a TEXT
    value) as the str it decodes to, or, when it is no UTF-8, as those bytes under the same
    tag (which no str gives, so it is told apart from every valid text)."""
    if type(value) is _Text:
        return _SIZED(b"u", len(value)) + value
    if value is None or type(value) in (int, float, str, bytes):
        return marshal.dumps(value, 2)
    raise TypeError(f"unexpected value of type {type(value).__name__} from SQLite")


def _encode_row(values: Sequence[Any]) -> bytes:
    """A row's values as marshal.dumps(tuple(values), 2) writes them (see _encode_value)."""
    return b"".join([_TUPLE(b"(", len(values)), *map(_encode_value, values)])


def _feed_stream(
    conn: GuardedConnection,
    h: hashlib._Hash,
    table: str,
    column: str,
    rowid: tuple[str | None, int],
    kind: str,
) -> None:
    """Feed one large value in chunks: the same bytes _feed_value would, never all at once."""
    tag = _TAGS[kind]
    if HAS_BLOB_IO:
        blobopen = getattr(conn, "blobopen")  # noqa: B009 - Python 3.11+, mypy checks 3.10
        with blobopen(table, column, rowid[1], readonly=True) as blob:
            h.update(_SIZED(tag, len(blob)))
            while chunk := blob.read(CHUNK):
                conn.check_deadline()
                h.update(chunk)
        return
    value = f"CAST({_quote(column)} AS BLOB)"
    where = f"FROM {_quote(table)} WHERE {rowid[0]} = ?"
    size = int(conn.execute(f"SELECT length({value}) {where}", (rowid[1],)).fetchone()[0])
    h.update(_SIZED(tag, size))
    for start in range(1, size + 1, FALLBACK_CHUNK):
        row = conn.execute(
            f"SELECT substr({value}, ?, ?) {where}", (start, FALLBACK_CHUNK, rowid[1])
        ).fetchone()
        h.update(bytes(row[0]))


def kept_rows(before: Path, after: Path, table: str, limits: Limits | None = None) -> int:
    """How many of table's rows in the copy before are still in the copy after, as multisets
    of row digests: the comparison by digests of a table too large to keep them in memory.

    Both copies' row digests go to a scratch SQLite file beside after, which SQLite counts:
    memory stays bounded. Each copy is read under one deadline; raises QueryTimeout or
    ValueTooLarge when a limit stops it, SnapshotError when a copy cannot be read.
    """
    with tempfile.TemporaryDirectory(dir=after.parent, prefix=".digests-") as scratch:
        spill = open_memory(limits)
        try:
            spill.execute("ATTACH DATABASE ? AS spill", (str(Path(scratch) / "rows.db"),))
            spill.execute("CREATE TABLE spill.h (side INTEGER NOT NULL, hash BLOB NOT NULL)")
            for side, path in enumerate((before, after)):
                with reading(path, f"the rows of table {table}", limits) as conn:
                    _spill(conn, spill, side, table)
            spill.execute("CREATE INDEX spill.h_hash ON h (side, hash)")
            row = spill.execute(
                "SELECT coalesce(sum(min(o.n, coalesce(n.n, 0))), 0) FROM "
                "(SELECT hash, count(*) AS n FROM spill.h WHERE side = 0 GROUP BY hash) AS o "
                "LEFT JOIN (SELECT hash, count(*) AS n FROM spill.h WHERE side = 1 GROUP BY hash)"
                " AS n USING (hash)"
            ).fetchone()
            return int(row[0])
        finally:
            spill.close()


def _spill(conn: GuardedConnection, spill: GuardedConnection, side: int, table: str) -> None:
    """Write the copy's row digests of table to spill.h, as side (the same as table_data's)."""
    with conn.stage():
        layout = _layout(conn, table)
        for stream_text in (False, True):
            spill.execute("DELETE FROM spill.h WHERE side = ?", (side,))
            hashes = row_hashes(conn, table, layout, stream_text=stream_text)
            try:
                while batch := list(itertools.islice(hashes, 10_000)):
                    spill.executemany(
                        "INSERT INTO spill.h VALUES (?, ?)", [(side, h) for h in batch]
                    )
                return
            except ValueTooLarge:
                if stream_text or not any(layout.streamable):
                    raise

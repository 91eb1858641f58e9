"""Row digests of a table, computed streaming: what retention compares between two snapshots.

A row's digest is a sha256 over its raw values, each written as a type tag, then (for text
and blobs) an 8-byte length, then its bytes: no two different rows give the same stream,
whatever their values. Blobs over CHUNK bytes are fed in chunks through SQLite's blob I/O,
never read whole, so a 900 MB blob costs a megabyte of memory. Text is read whole up to the
connection's length limit; a table holding longer text is read again with every text value
streamed. A table's digest covers the multiset of its row digests, in sorted order.
"""

from __future__ import annotations

import hashlib
import re
import sqlite3
import struct
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from persistaudit.exceptions import ValueTooLarge
from persistaudit.sqlite_guard import GuardedConnection

CHUNK = 1024 * 1024
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


def table_data(conn: GuardedConnection, table: str) -> TableData:
    """Count and digest a table's rows, in bounded memory and under one deadline.

    Raises QueryTimeout or ValueTooLarge when a limit stops it.
    """
    with conn.stage():
        layout = _layout(conn, table)
        try:
            hashes = _row_hashes(conn, table, layout, stream_text=False)
        except ValueTooLarge:
            utf8 = str(conn.execute("PRAGMA encoding").fetchone()[0]).upper() == "UTF-8"
            if not (any(layout.streamable) and utf8):
                raise
            hashes = _row_hashes(conn, table, layout, stream_text=True)
    digest = hashlib.sha256()
    for row_hash in sorted(hashes):
        digest.update(row_hash + hashes[row_hash].to_bytes(8, "big"))
    return TableData(table, sum(hashes.values()), digest.hexdigest(), hashes)


def _row_hashes(
    conn: GuardedConnection, table: str, layout: _Layout, *, stream_text: bool
) -> Counter[bytes]:
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
    hashes: Counter[bytes] = Counter()
    saved = conn.text_factory
    conn.text_factory = _Text
    try:
        cursor = conn.execute(sql)
        while rows := cursor.fetchmany(512):
            for rowid_value, marked, *values in rows:
                if marked is None:
                    hashes[hashlib.sha256(_encode_row(values)).digest()] += 1
                    continue
                h = hashlib.sha256()
                streamed = {int(m[1:]): m[0] for m in bytes(marked).decode().split(",") if m}
                for i, value in enumerate(values):
                    if i in streamed:
                        where = (layout.rowid, rowid_value)
                        _feed_stream(conn, h, table, layout.columns[i], where, streamed[i])
                    else:
                        h.update(_encode_row([value]))
                hashes[h.digest()] += 1
    finally:
        conn.text_factory = saved
    return hashes


_INT = struct.Struct(">cq").pack
_REAL = struct.Struct(">cd").pack
_SIZED = struct.Struct(">cQ").pack
# Each value as its tag, then 8 bytes of integer or real, or a length and then the bytes.
_ENCODE: dict[type, Callable[[Any], bytes]] = {
    int: lambda v: _INT(b"I", v),
    _Text: lambda v: _SIZED(b"T", len(v)) + v,
    type(None): lambda v: b"N",
    float: lambda v: _REAL(b"F", v),
    bytes: lambda v: _SIZED(b"B", len(v)) + v,
}


def _encode_row(values: list[Any]) -> bytes:
    return b"".join([_ENCODE[type(value)](value) for value in values])


def _feed_stream(
    conn: GuardedConnection,
    h: hashlib._Hash,
    table: str,
    column: str,
    rowid: tuple[str | None, int],
    kind: str,
) -> None:
    """Feed one large value in chunks: the same bytes _feed_value would, never all at once."""
    tag = kind.encode()
    if HAS_BLOB_IO:
        blobopen = getattr(conn, "blobopen")  # noqa: B009 - Python 3.11+, mypy checks 3.10
        with blobopen(table, column, rowid[1], readonly=True) as blob:
            h.update(tag + len(blob).to_bytes(8, "big"))
            while chunk := blob.read(CHUNK):
                conn.check_deadline()
                h.update(chunk)
        return
    value = f"CAST({_quote(column)} AS BLOB)"
    where = f"FROM {_quote(table)} WHERE {rowid[0]} = ?"
    size = int(conn.execute(f"SELECT length({value}) {where}", (rowid[1],)).fetchone()[0])
    h.update(tag + size.to_bytes(8, "big"))
    for start in range(1, size + 1, FALLBACK_CHUNK):
        row = conn.execute(
            f"SELECT substr({value}, ?, ?) {where}", (start, FALLBACK_CHUNK, rowid[1])
        ).fetchone()
        h.update(bytes(row[0]))

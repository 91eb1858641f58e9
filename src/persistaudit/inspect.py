"""Facts about a SQLite database file, read on the host from a snapshot copy."""

from __future__ import annotations

import hashlib
import sqlite3
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from persistaudit.exceptions import SnapshotError, sqlite_message

HEADER = b"SQLite format 3\x00"


@dataclass(frozen=True)
class ForeignKeyViolation:
    table: str
    rowid: int | None
    parent: str
    fk_index: int


@dataclass(frozen=True)
class TableData:
    """A table's rows as a multiset of row hashes: what retention compares."""

    name: str
    rows: int
    digest: str
    row_hashes: Counter[str] = field(repr=False, compare=False)


@dataclass(frozen=True)
class DatabaseFacts:
    path: str
    size_bytes: int
    sqlite_version: str
    journal_mode: str
    header_write_version: int  # byte 18 of the header: 1 rollback journal, 2 WAL
    integrity: list[str]
    foreign_key_violations: list[ForeignKeyViolation]
    tables: dict[str, str]  # name -> CREATE statement; the full schema is schema.read_schema's
    data: dict[str, TableData] = field(repr=False)

    @property
    def integrity_ok(self) -> bool:
        return self.integrity == ["ok"]

    @property
    def counts(self) -> dict[str, int]:
        return {name: t.rows for name, t in self.data.items()}


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def open_copy(path: Path) -> sqlite3.Connection:
    """Open a host copy of a database; the checks only read it."""
    try:
        with path.open("rb") as fh:
            head = fh.read(100)
    except OSError as exc:
        raise SnapshotError(f"{path}: cannot read: {exc}") from None
    if len(head) == 0:
        raise SnapshotError(f"{path}: the database file is empty (0 bytes)")
    if not head.startswith(HEADER):
        raise SnapshotError(f"{path}: not a SQLite database (wrong header; encrypted or corrupt?)")
    conn = sqlite3.connect(str(path))
    conn.execute("PRAGMA query_only = ON")
    return conn


def inspect_database(path: Path) -> DatabaseFacts:
    conn = open_copy(path)
    try:
        header = path.read_bytes()[:100]
        objects = conn.execute(
            "SELECT type, name, tbl_name, coalesce(sql, '') FROM sqlite_master ORDER BY name"
        ).fetchall()
        tables = {
            n: sql for t, n, _, sql in objects if t == "table" and not n.startswith("sqlite_")
        }
        fk_rows = conn.execute("PRAGMA foreign_key_check").fetchall()
        return DatabaseFacts(
            path=str(path),
            size_bytes=path.stat().st_size,
            sqlite_version=sqlite3.sqlite_version,
            journal_mode=str(conn.execute("PRAGMA journal_mode").fetchone()[0]).lower(),
            header_write_version=header[18],
            integrity=[str(r[0]) for r in conn.execute("PRAGMA integrity_check")],
            foreign_key_violations=[
                ForeignKeyViolation(str(r[0]), r[1], str(r[2]), int(r[3])) for r in fk_rows
            ],
            tables=tables,
            data={name: _table_data(conn, name) for name in tables},
        )
    except (sqlite3.DatabaseError, UnicodeDecodeError) as exc:
        raise SnapshotError(f"{path}: cannot read the database: {sqlite_message(exc)}") from None
    finally:
        conn.close()


def _table_data(conn: sqlite3.Connection, name: str) -> TableData:
    hashes: Counter[str] = Counter()
    for row in conn.execute(f"SELECT * FROM {_quote(name)}"):
        hashes[hashlib.sha256(repr(row).encode()).hexdigest()] += 1
    digest = hashlib.sha256("".join(sorted(hashes.elements())).encode()).hexdigest()
    return TableData(name, sum(hashes.values()), digest, hashes)

"""Facts about a SQLite database file, read on the host from a snapshot copy.

Every statement runs under the limits of sqlite_guard. When a limit stops integrity_check,
foreign_key_check or a table's row digests, the fact says why instead of holding a result,
and the check that needs it reports BLOCKED; a limit on the basic facts raises.
"""

from __future__ import annotations

import sqlite3
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from persistaudit import digest
from persistaudit.digest import TableData
from persistaudit.exceptions import LimitExceeded
from persistaudit.sqlite_files import MAGIC as HEADER
from persistaudit.sqlite_files import WAL_VERSION, read_header
from persistaudit.sqlite_guard import GuardedConnection, Limits, open_copy, reading

# HEADER (sqlite_files.MAGIC) and open_copy live elsewhere now; they stay importable from here.
__all__ = [
    "HEADER",
    "DatabaseFacts",
    "ForeignKeyViolation",
    "TableData",
    "inspect_database",
    "open_copy",
]
MAX_FK_VIOLATIONS = 1000  # kept as evidence; the total is counted
_T = TypeVar("_T")


@dataclass(frozen=True)
class ForeignKeyViolation:
    table: str
    rowid: int | None
    parent: str
    fk_index: int


@dataclass(frozen=True)
class DatabaseFacts:
    path: str
    size_bytes: int
    sqlite_version: str
    journal_mode: str
    header_write_version: int  # the header's write version: 1 rollback journal, 2 WAL
    integrity: list[str]
    foreign_key_violations: list[ForeignKeyViolation]  # the first MAX_FK_VIOLATIONS
    tables: dict[str, str]  # name -> CREATE statement; the full schema is schema.read_schema's
    data: dict[str, TableData] = field(repr=False)
    foreign_key_violations_total: int = 0
    integrity_error: str = ""  # why PRAGMA integrity_check could not finish (a limit)
    foreign_key_error: str = ""  # why PRAGMA foreign_key_check could not finish

    @property
    def wal(self) -> bool:
        """Is the database in WAL mode, as its header says?"""
        return self.header_write_version == WAL_VERSION

    @property
    def integrity_ok(self) -> bool:
        return not self.integrity_error and self.integrity == ["ok"]

    @property
    def counts(self) -> dict[str, int]:
        """Rows per table, for the tables whose rows could be read in full."""
        return {name: t.rows for name, t in self.data.items() if not t.error}


def inspect_database(path: Path, limits: Limits | None = None) -> DatabaseFacts:
    with reading(path, "the database", limits) as conn:
        header = read_header(path)
        objects = conn.execute(
            "SELECT type, name, tbl_name, coalesce(sql, '') FROM sqlite_master ORDER BY name"
        ).fetchall()
        tables = {
            n: sql for t, n, _, sql in objects if t == "table" and not n.startswith("sqlite_")
        }
        journal_mode = str(conn.execute("PRAGMA journal_mode").fetchone()[0]).lower()
        integrity, integrity_error = _limited(
            "PRAGMA integrity_check",
            lambda: [str(r[0]) for r in conn.execute("PRAGMA integrity_check")],
        )
        fk, fk_error = _limited("PRAGMA foreign_key_check", lambda: _foreign_key_violations(conn))
        violations, total = fk or ([], 0)
        return DatabaseFacts(
            path=str(path),
            size_bytes=path.stat().st_size,
            sqlite_version=sqlite3.sqlite_version,
            journal_mode=journal_mode,
            header_write_version=header.write_version,
            integrity=integrity or [],
            foreign_key_violations=violations,
            tables=tables,
            data={name: _table_data(conn, name) for name in tables},
            foreign_key_violations_total=total,
            integrity_error=integrity_error,
            foreign_key_error=fk_error,
        )


def _limited(what: str, read: Callable[[], _T]) -> tuple[_T | None, str]:
    """read()'s result, or None and why a limit stopped it."""
    try:
        return read(), ""
    except LimitExceeded as exc:
        return None, f"{what}: {exc}"


def _foreign_key_violations(conn: GuardedConnection) -> tuple[list[ForeignKeyViolation], int]:
    kept: list[ForeignKeyViolation] = []
    total = 0
    for r in conn.execute("PRAGMA foreign_key_check"):
        total += 1
        if len(kept) < MAX_FK_VIOLATIONS:
            kept.append(ForeignKeyViolation(str(r[0]), r[1], str(r[2]), int(r[3])))
    return kept, total


def _table_data(conn: GuardedConnection, name: str) -> TableData:
    try:
        return digest.table_data(conn, name)
    except LimitExceeded as exc:
        return TableData(name, 0, "", Counter(), f"row digests of table {name}: {exc}")

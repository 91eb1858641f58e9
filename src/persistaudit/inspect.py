"""Facts about a SQLite database file, read on the host from a snapshot copy.

Every statement runs under the limits of sqlite_guard. When a limit stops integrity_check,
foreign_key_check or a table's row digests, the fact says why instead of holding a result,
and the check that needs it reports BLOCKED; a limit on the basic facts raises.

Memory stays bounded whatever the database's size: rows are digested streaming (digest.py),
and only a budget of row digests is kept for the comparison by digests.
"""

from __future__ import annotations

import contextlib
import dataclasses
import sqlite3
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from persistaudit import btree_pages, digest
from persistaudit.digest import TableData
from persistaudit.exceptions import LimitExceeded
from persistaudit.sqlite_files import MAGIC as HEADER
from persistaudit.sqlite_files import WAL_VERSION, read_header
from persistaudit.sqlite_guard import GuardedConnection, Limits, open_copy, reading

if TYPE_CHECKING:  # snapshot needs the engine's client; reading a file does not
    from persistaudit.snapshot import Snapshot

# HEADER (sqlite_files.MAGIC) and open_copy live elsewhere now; they stay importable from here.
__all__ = [
    "HEADER",
    "DatabaseFacts",
    "ForeignKeyViolation",
    "TableData",
    "inspect_database",
    "inspect_snapshot",
    "open_copy",
]
MAX_FK_VIOLATIONS = 1000  # kept as evidence; the total is counted
ROW_HASHES_PER_DATABASE = 50_000  # row digests kept in memory for one copy (about 8 MB)
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
    fingerprint: str = ""  # the snapshot's (inspect_snapshot): equal for byte-identical copies
    # table -> digest of its b-tree pages (btree_pages): equal pages hold equal rows
    page_digests: dict[str, str] = field(default_factory=dict, repr=False, compare=False)
    reused: tuple[str, ...] = ()  # the tables whose row digests came from the previous copy

    @property
    def complete(self) -> bool:
        """Was every fact read in full (no limit stopped any)?"""
        return not (
            self.integrity_error
            or self.foreign_key_error
            or any(t.error for t in self.data.values())
        )

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


def inspect_snapshot(
    snapshot: Snapshot, limits: Limits | None = None, previous: DatabaseFacts | None = None
) -> DatabaseFacts:
    """inspect_database of a snapshot's copy, or previous's facts when previous was read from
    byte-identical files (the same fingerprint) and no limit stopped any of it.

    Identical bytes are the same database to SQLite, so nothing is read twice; one changed
    byte anywhere makes the fingerprints differ and the copy is read again, with the row
    digests of each table whose pages did not change taken from previous.
    """
    fingerprint = snapshot.fingerprint
    same = previous is not None and fingerprint and previous.fingerprint == fingerprint
    if previous is not None and same and previous.complete:
        return dataclasses.replace(previous, path=str(snapshot.path), reused=tuple(previous.data))
    facts = inspect_database(snapshot.path, limits, previous)
    return dataclasses.replace(facts, fingerprint=fingerprint)


def inspect_database(
    path: Path, limits: Limits | None = None, previous: DatabaseFacts | None = None
) -> DatabaseFacts:
    """The facts of the database at path, a copy that is persistaudit's own.

    integrity_check and foreign_key_check run on a second connection in a second thread,
    while this one digests the tables (SQLite lets go of the GIL): the slowest of the two
    sets the pace, not their sum. A table whose pages are those it had in previous (another
    copy of the same database) keeps previous's row digests: they are not read again.
    """
    settled = btree_pages.checkpoint(path, limits)  # before any reader: it writes the copy
    with reading(path, "the database", limits) as conn:
        header = read_header(path)
        objects = conn.execute(
            "SELECT type, name, tbl_name, coalesce(sql, '') FROM sqlite_master ORDER BY name"
        ).fetchall()
        tables = {
            n: sql for t, n, _, sql in objects if t == "table" and not n.startswith("sqlite_")
        }
        journal_mode = str(conn.execute("PRAGMA journal_mode").fetchone()[0]).lower()
        # The pages first: they say which tables need no reading. Not in the checks' thread:
        # sharing the GIL with the row digests, they would cost as much, and come too late.
        pages = btree_pages.page_digests(conn, path) if settled else {}
        same = _same_pages(tables, pages, previous)
        with _Checks(path, limits) as checks:
            data = _all_table_data(conn, tables, same)
        integrity, integrity_error = checks.integrity
        fk, fk_error = checks.foreign_keys
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
            data=data,
            foreign_key_violations_total=total,
            integrity_error=integrity_error,
            foreign_key_error=fk_error,
            page_digests=pages,
            reused=tuple(same),
        )


def _same_pages(
    tables: dict[str, str], pages: dict[str, str], previous: DatabaseFacts | None
) -> dict[str, TableData]:
    """previous's row digests of each of tables whose pages are unchanged (and were read
    whole), in the order of tables."""
    if previous is None:
        return {}
    return {
        name: old
        for name in tables
        if (old := previous.data.get(name)) is not None
        and not old.error
        and name in pages
        and previous.page_digests.get(name) == pages[name]
    }


def _all_table_data(
    conn: GuardedConnection, tables: dict[str, str], known: dict[str, TableData]
) -> dict[str, TableData]:
    """Every table's digest, from known when there; row digests kept within
    ROW_HASHES_PER_DATABASE in all."""
    left = ROW_HASHES_PER_DATABASE
    data = {}
    for name in tables:
        data[name] = known[name] if name in known else _table_data(conn, name, left)
        if data[name].hashes_kept:
            left = max(left - data[name].rows, 0)
    return data


class _Checks:
    """PRAGMA integrity_check and foreign_key_check of path, run in a thread of their own.

    Each statement keeps its own deadline (the thread's connection is guarded like any
    other). Leaving the block waits for them; leaving it with an exception interrupts them
    first. An error that is not a limit is raised in the caller's thread, where reading()
    names the file.
    """

    def __init__(self, path: Path, limits: Limits | None) -> None:
        self.path = path
        self.limits = limits
        self.integrity: tuple[list[str] | None, str] = (None, "")
        self.foreign_keys: tuple[tuple[list[ForeignKeyViolation], int] | None, str] = (None, "")
        self._conn: GuardedConnection | None = None
        self._opened = threading.Event()
        self._closing = threading.Lock()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="integrity_check", daemon=True)

    def __enter__(self) -> _Checks:
        self._thread.start()
        return self

    def __exit__(self, kind: object, exc: object, tb: object) -> None:
        try:
            if exc is not None:
                self._stop()
            self._thread.join()
        except BaseException:  # Ctrl-C while waiting: stop the thread's statement too
            self._stop()
            raise
        if exc is None and self._error is not None:
            raise self._error

    def _stop(self) -> None:
        self._opened.wait()
        with self._closing:  # never while the thread closes it
            if self._conn is not None:
                with contextlib.suppress(sqlite3.ProgrammingError):  # closed: it is done
                    self._conn.interrupt()

    def _run(self) -> None:
        try:
            self._conn = conn = open_copy(self.path, self.limits)
        except BaseException as exc:  # raised again in the caller's thread
            self._error = exc
            return
        finally:
            self._opened.set()
        try:
            self.integrity = _limited(
                "PRAGMA integrity_check",
                lambda: [str(r[0]) for r in conn.execute("PRAGMA integrity_check")],
            )
            self.foreign_keys = _limited(
                "PRAGMA foreign_key_check", lambda: _foreign_key_violations(conn)
            )
        except BaseException as exc:
            self._error = exc
        finally:
            with self._closing:
                conn.close()


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


def _table_data(conn: GuardedConnection, name: str, keep: int) -> TableData:
    try:
        return digest.table_data(conn, name, keep_hashes=keep)
    except LimitExceeded as exc:
        return TableData(name, 0, "", Counter(), f"row digests of table {name}: {exc}")

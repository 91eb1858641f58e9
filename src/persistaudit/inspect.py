"""Facts about a SQLite database file, read on the host from a snapshot copy.

Every statement runs under the limits of sqlite_guard. When a limit stops integrity_check,
foreign_key_check or a table's row digests, the fact says why instead of holding a result,
and the check that needs it reports BLOCKED; a limit on the basic facts raises.

Row digests are read when first asked for (TableRows), not during the inspection: most
tables of an audit's snapshots keep their pages from one snapshot to the next (btree_pages),
and retention compares the others through SQL on both copies (rowdiff), so the Python work
per row is spent only on what needs it. Memory stays bounded whatever the database's size:
rows are digested streaming (digest.py), and only a budget of row digests is kept.
"""

from __future__ import annotations

import contextlib
import dataclasses
import sqlite3
import threading
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from persistaudit import btree_pages, digest
from persistaudit.digest import TableData
from persistaudit.exceptions import LimitExceeded, PersistauditError, sqlite_message
from persistaudit.rowdiff import quote
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
    "TableRows",
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
    data: Mapping[str, TableData] = field(repr=False)  # a TableRows: read when asked for
    foreign_key_violations_total: int = 0
    integrity_error: str = ""  # why PRAGMA integrity_check could not finish (a limit)
    foreign_key_error: str = ""  # why PRAGMA foreign_key_check could not finish
    fingerprint: str = ""  # the snapshot's (inspect_snapshot): equal for byte-identical copies
    # table -> digest of its b-tree pages (btree_pages): equal pages hold equal rows
    page_digests: dict[str, str] = field(default_factory=dict, repr=False, compare=False)
    reused: tuple[str, ...] = ()  # the tables whose pages are the previous copy's

    @property
    def complete(self) -> bool:
        """Was every fact read in full (no limit stopped any)? Reads every table's row digests."""
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
        """Rows per table, for the tables whose rows could be counted (no limit stopped it);
        counted by SQLite, without reading the rows' digests."""
        if isinstance(self.data, TableRows):
            return self.data.counts()
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
    if previous is not None and same and _sound(previous):
        return dataclasses.replace(previous, path=str(snapshot.path), reused=tuple(previous.data))
    facts = inspect_database(snapshot.path, limits, previous)
    return dataclasses.replace(facts, fingerprint=fingerprint)


def _sound(facts: DatabaseFacts) -> bool:
    """No limit stopped any fact read so far (row digests not yet read are not read here)."""
    if facts.integrity_error or facts.foreign_key_error:
        return False
    if isinstance(facts.data, TableRows):
        return not facts.data.failed()
    return not any(t.error for t in facts.data.values())


def inspect_database(
    path: Path, limits: Limits | None = None, previous: DatabaseFacts | None = None
) -> DatabaseFacts:
    """The facts of the database at path, a copy that is persistaudit's own.

    integrity_check and foreign_key_check run on a second connection in a second thread,
    while this one hashes each table's pages (SQLite and hashlib let go of the GIL): the
    slowest of the two sets the pace, not their sum. A table whose pages are those it had in
    previous (another copy of the same database) will take previous's row digests; the
    others' are read from path when first asked for (TableRows), so path must stay.
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
        with _Checks(path, limits) as checks:
            pages = btree_pages.page_digests(conn, path) if settled else {}
        integrity, integrity_error = checks.integrity
        fk, fk_error = checks.foreign_keys
        violations, total = fk or ([], 0)
        same = _same_pages(tables, pages, previous)
        return DatabaseFacts(
            path=str(path),
            size_bytes=path.stat().st_size,
            sqlite_version=sqlite3.sqlite_version,
            journal_mode=journal_mode,
            header_write_version=header.write_version,
            integrity=integrity or [],
            foreign_key_violations=violations,
            tables=tables,
            data=TableRows(
                path,
                limits,
                tables,
                {name: previous.data for name in same} if previous is not None else {},
            ),
            foreign_key_violations_total=total,
            integrity_error=integrity_error,
            foreign_key_error=fk_error,
            page_digests=pages,
            reused=tuple(same),
        )


def _same_pages(
    tables: dict[str, str], pages: dict[str, str], previous: DatabaseFacts | None
) -> list[str]:
    """The tables whose pages are those they had in previous, in the order of tables."""
    if previous is None:
        return []
    return [
        name
        for name in tables
        if name in previous.data
        and name in pages
        and previous.page_digests.get(name) == pages[name]
    ]


class TableRows(Mapping[str, TableData]):
    """Each table's row digests (TableData), read from the copy at path when first asked for.

    A table whose pages are another copy's (same: its TableRows) takes that copy's digests,
    unless a limit stopped them there; then it is read here. A limit, or SQLite refusing the
    table (a damaged page), gives a TableData whose error says why, as a limit did when the
    digests were read with the other facts. At most ROW_HASHES_PER_DATABASE row digests are
    kept, in the order the tables are asked for. Safe to use from several threads.
    """

    def __init__(
        self,
        path: Path,
        limits: Limits | None,
        tables: Mapping[str, str],
        same: Mapping[str, Mapping[str, TableData]],
    ) -> None:
        self._path = path
        self._limits = limits
        self._names = dict.fromkeys(tables)  # in order; membership at once, not a scan
        self._same = dict(same)
        self._read: dict[str, TableData] = {}
        self._left = ROW_HASHES_PER_DATABASE
        self._counts: dict[str, int] | None = None
        self._lock = threading.RLock()

    def __getitem__(self, name: str) -> TableData:
        with self._lock:
            if (data := self._read.get(name)) is not None:
                return data
            if name not in self._names:  # the tables taken from another copy are among them
                raise KeyError(name)
            if (other := self._same.get(name)) is not None and not (data := other[name]).error:
                self._read[name] = data
                return data
            self._read[name] = data = self._table_data(name)
            if data.hashes_kept:
                self._left = max(self._left - data.rows, 0)
            return data

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)

    def __contains__(self, name: object) -> bool:
        return name in self._names

    def known(self, name: str) -> TableData | None:
        """name's digests if they were read already (here or in the copy they come from)."""
        with self._lock:
            if (data := self._read.get(name)) is not None:
                return data
            other = self._same.get(name)
            return other.known(name) if isinstance(other, TableRows) else None

    def counts(self) -> dict[str, int]:
        """Rows per table: from the digests where they were read, else SQLite's count(*)
        under the copy's limits; a table a limit or an error stops is left out."""
        with self._lock:
            if self._counts is None:
                counts: dict[str, int] = {}
                for name in self._names:
                    known = self.known(name)
                    if known is not None and not known.error:
                        counts[name] = known.rows
                    elif (n := self._count(name)) is not None:
                        counts[name] = n
                self._counts = counts
            return dict(self._counts)

    def failed(self) -> bool:
        """Did a limit or an error stop any table read so far?"""
        with self._lock:
            return any(t.error for t in self._read.values())

    def _count(self, name: str) -> int | None:
        try:
            with reading(self._path, f"the rows of {name}", self._limits) as conn, conn.stage():
                return int(conn.execute(f"SELECT count(*) FROM {quote(name)}").fetchone()[0])
        except PersistauditError:  # a limit, a damaged table, the copy gone: not counted
            return None

    def _table_data(self, name: str) -> TableData:
        def failed(why: str) -> TableData:
            return TableData(name, 0, "", Counter(), f"row digests of table {name}: {why}")

        try:
            conn = open_copy(self._path, self._limits)
        except PersistauditError as exc:  # the copy is gone or no longer a database
            return failed(str(exc))
        try:
            return digest.table_data(conn, name, keep_hashes=self._left)
        except LimitExceeded as exc:
            return failed(str(exc))
        except (sqlite3.DatabaseError, UnicodeDecodeError) as exc:
            return failed(f"{self._path}: cannot read the table: {sqlite_message(exc)}")
        finally:
            conn.close()


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

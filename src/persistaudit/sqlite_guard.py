"""The one way persistaudit opens a host copy of a target's database, with limits.

The database is untrusted input: a view, trigger or CHECK can loop forever or build a blob of
a gigabyte. Every connection made here therefore has
- a deadline: a progress handler interrupts any statement (or stage of statements) that runs
  past its time, and the caller gets QueryTimeout, never a partial result;
- a length limit on every value read and every expression built (SQLITE_LIMIT_LENGTH): going
  over it costs no memory, the statement fails with ValueTooLarge;
- PRAGMA trusted_schema=OFF, so the schema cannot run functions or virtual tables that SQLite
  does not mark innocuous. SQLite (3.40 among others) does not mark its own JSON, full-text
  and R*Tree parts innocuous, although they have no side effects; a statement refused only
  because the schema uses one of those is run again with trusted_schema=ON (persistaudit
  defines no functions of its own, so nothing else could run). Without that, a CHECK
  (json_valid(meta)) would make every probe and integrity_check of a healthy database fail.
Copies that are only read have PRAGMA query_only=ON. They are not opened with mode=ro:
on a read-only connection SQLite's integrity_check silently skips CHECK constraints (3.40),
which would let rows that violate them pass. Every copy is persistaudit's own.
"""

from __future__ import annotations

import functools
import itertools
import operator
import re
import sqlite3
import time
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

from persistaudit.display import format_size
from persistaudit.exceptions import (
    LimitExceeded,
    QueryTimeout,
    SnapshotError,
    ValueTooLarge,
    sqlite_message,
)
from persistaudit.sqlite_files import read_header

DEFAULT_QUERY_TIMEOUT = 60.0
# Large enough for any value a service keeps in a row and reads whole; larger ones are
# streamed by the row digests (digest.py), never read whole.
DEFAULT_MAX_VALUE_BYTES = 64 * 1024**2
# Virtual machine instructions between two looks at the clock. One instruction can be a
# function call over a value as long as the length limit, so a look every 1,000 keeps the
# overrun short; SQLite cannot stop inside a call.
PROGRESS_STEPS = 1_000
_TOOBIG = 18  # SQLITE_TOOBIG; sqlite3 exports the name from Python 3.11
_INTERRUPT = 9  # SQLITE_INTERRUPT
_LIMIT_LENGTH = 0  # SQLITE_LIMIT_LENGTH, likewise
_UNSAFE = re.compile(r'unsafe use of (?:virtual table "(?P<table>[^"]+)"|(?P<function>.+)\(\))')
# SQLite's own side-effect-free parts that it does not mark innocuous (see above).
_SQLITE_FUNCTIONS = re.compile(
    r"->>?|jsonb?(_\w+)?|bm25|highlight|snippet|matchinfo|offsets|optimize|match"
    r"|rtree(check|depth|node)|geopoly_\w+",
    re.IGNORECASE,
)
_SQLITE_MODULES = frozenset(
    {"json_each", "json_tree", "fts3", "fts4", "fts5", "fts3tokenize", "fts4aux", "fts5vocab"}
    | {"rtree", "rtree_i32", "geopoly", "dbstat"}
)
_USING = re.compile(r"\busing\s+\"?(\w+)", re.IGNORECASE)


@dataclass(frozen=True)
class Limits:
    """How long one statement may run, and how large one value may be, on a host copy."""

    query_timeout: float = DEFAULT_QUERY_TIMEOUT
    max_value_bytes: int = DEFAULT_MAX_VALUE_BYTES


class GuardedConnection(sqlite3.Connection):
    """A connection whose statements run under a deadline; made by open_copy and open_memory.

    Each execute() starts a new deadline, unless a stage() is open: then every statement in
    it shares the stage's. Errors that come from a limit are raised as QueryTimeout or
    ValueTooLarge, whether at execute() or while rows are fetched.
    """

    limits: Limits
    trusted: set[str]  # which of SQLite's own parts were let through with trusted_schema=ON
    _deadline: float
    _timeout: float
    _in_stage: bool

    def _guard(self, limits: Limits, *, trusted_schema: bool) -> None:
        self.limits = limits
        self.trusted = set()
        self._in_stage = False
        self._restart(limits.query_timeout)
        setlimit = getattr(self, "setlimit", None)  # Python 3.11+
        if setlimit is not None:
            setlimit(_LIMIT_LENGTH, limits.max_value_bytes)
        # else Python 3.10: no setlimit, so values and expressions are bounded only by
        # SQLite's own maximum (1e9 bytes); the deadline still holds.
        self.execute(f"PRAGMA trusted_schema = {'ON' if trusted_schema else 'OFF'}")

    def _restart(self, timeout: float) -> None:
        self._timeout = timeout
        self._deadline = time.monotonic() + timeout
        # "deadline < now", made of C functions only. A Python handler would be where a
        # pending signal is raised, and the sqlite3 module swallows what a handler raises:
        # Ctrl-C would be lost. This way it waits, at most until the deadline.
        expired = map(operator.lt, itertools.repeat(self._deadline), iter(time.monotonic, None))
        self.set_progress_handler(functools.partial(next, expired), PROGRESS_STEPS)

    def begin_statement(self) -> None:
        if not self._in_stage:
            self._restart(self.limits.query_timeout)

    def check_deadline(self) -> None:
        """Raise QueryTimeout if the current deadline has passed (for work outside SQLite)."""
        if time.monotonic() > self._deadline:
            raise self._timeout_error()

    def _timeout_error(self) -> QueryTimeout:
        return QueryTimeout(f"timed out after {self._timeout:g} s (database.query_timeout)")

    @contextmanager
    def stage(self, timeout: float | None = None) -> Iterator[None]:
        """One deadline for every statement inside, e.g. all those of a table's digest."""
        outer = self._in_stage
        if not outer:
            self._restart(self.limits.query_timeout if timeout is None else timeout)
            self._in_stage = True
        try:
            yield
        finally:
            self._in_stage = outer

    def raise_limit(self, exc: sqlite3.Error) -> None:
        """Re-raise exc as QueryTimeout or ValueTooLarge when a limit caused it."""
        code = getattr(exc, "sqlite_errorcode", None)
        interrupted = code == _INTERRUPT or (code is None and str(exc) == "interrupted")
        if interrupted and time.monotonic() > self._deadline:
            raise self._timeout_error() from None
        if code == _TOOBIG or (code is None and "too big" in str(exc)):
            raise ValueTooLarge(
                "a value or expression is larger than "
                f"{format_size(self.limits.max_value_bytes)}, the limit on values read "
                "from a copy of the database"
            ) from None

    def sqlite_part_refused(self, exc: sqlite3.Error) -> bool:
        """Was exc raised only because trusted_schema=OFF refused one of SQLite's own parts?"""
        match = _UNSAFE.search(str(exc))
        if match is None:
            return False
        function, table = match.group("function"), match.group("table")
        if function is not None:
            allowed = _SQLITE_FUNCTIONS.fullmatch(function) is not None
            name = f"{function}()"
        else:
            module = table.lower()
            if not (module in _SQLITE_MODULES or module.startswith("pragma_")):
                module = self._module_of(table)
            allowed = module in _SQLITE_MODULES or module.startswith("pragma_")
            name = f"virtual table {table} ({module})"
        if allowed:
            self.trusted.add(name)
        return allowed

    def _module_of(self, table: str) -> str:
        """The module a virtual table uses, from its CREATE statement; "" if unknown."""
        try:
            with self.trusting_schema():  # reading the schema may itself be refused
                row = sqlite3.Connection.execute(
                    self,
                    "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?"
                    " COLLATE NOCASE",
                    (table,),
                ).fetchone()
        except sqlite3.Error:
            return ""
        using = _USING.search(str(row[0])) if row and row[0] else None
        return using.group(1).lower() if using else ""

    @contextmanager
    def trusting_schema(self) -> Iterator[None]:
        sqlite3.Connection.execute(self, "PRAGMA trusted_schema = ON")
        try:
            yield
        finally:
            sqlite3.Connection.execute(self, "PRAGMA trusted_schema = OFF")

    def execute(self, sql: str, parameters: Any = (), /) -> sqlite3.Cursor:
        return GuardedCursor(self).execute(sql, parameters)

    def executemany(self, sql: str, parameters: Any, /) -> sqlite3.Cursor:
        return GuardedCursor(self).executemany(sql, parameters)

    def executescript(self, sql_script: str, /) -> sqlite3.Cursor:
        self.begin_statement()
        try:
            return super().executescript(sql_script)
        except sqlite3.Error as exc:
            self.raise_limit(exc)
            raise


class GuardedCursor(sqlite3.Cursor):
    """A cursor of a GuardedConnection: limit errors are translated wherever they surface."""

    def _conn(self) -> GuardedConnection:
        conn = self.connection
        assert isinstance(conn, GuardedConnection)
        return conn

    def _failed(self, exc: sqlite3.Error) -> NoReturn:
        self._conn().raise_limit(exc)
        raise exc

    def execute(self, sql: str, parameters: Any = (), /) -> GuardedCursor:
        conn = self._conn()
        conn.begin_statement()
        try:
            super().execute(sql, parameters)
        except sqlite3.Error as exc:
            if not conn.sqlite_part_refused(exc):
                self._failed(exc)
            # Refused when prepared, so nothing ran: the same statement again, trusted.
            with conn.trusting_schema():
                try:
                    super().execute(sql, parameters)
                except sqlite3.Error as again:
                    self._failed(again)
        return self

    def executemany(self, sql: str, seq_of_parameters: Any, /) -> GuardedCursor:
        self._conn().begin_statement()
        try:
            super().executemany(sql, seq_of_parameters)
        except sqlite3.Error as exc:
            self._failed(exc)
        return self

    def __next__(self) -> Any:
        try:
            return super().__next__()
        except sqlite3.Error as exc:
            self._failed(exc)

    def fetchone(self) -> Any:
        try:
            return super().fetchone()
        except sqlite3.Error as exc:
            self._failed(exc)

    def fetchmany(self, size: int | None = 1) -> list[Any]:
        try:
            return super().fetchmany(size)
        except sqlite3.Error as exc:
            self._failed(exc)

    def fetchall(self) -> list[Any]:
        try:
            return super().fetchall()
        except sqlite3.Error as exc:
            self._failed(exc)


def _connect(
    target: str, limits: Limits, *, uri: bool, trusted_schema: bool = False
) -> GuardedConnection:
    conn = sqlite3.connect(target, uri=uri, isolation_level=None, factory=GuardedConnection)
    try:
        conn._guard(limits, trusted_schema=trusted_schema)
    except BaseException:
        conn.close()
        raise
    return conn


def open_copy(
    path: Path, limits: Limits | None = None, *, writable: bool = False
) -> GuardedConnection:
    """Open persistaudit's own copy of a database; query_only unless writable (the probes').

    Opening may still write to the copy, as SQLite does: a hot -journal (a write cut short
    when the copy was taken) is rolled back, so the copy shows the last committed state. So
    never pass a user's own file here; copy it first with sqlite_files.copy_database.
    """
    limits = limits or Limits()
    read_header(path)  # SnapshotError, naming the file, unless it is a SQLite database
    location = urllib.parse.quote(str(path.resolve()))
    conn = _connect(f"file:{location}?mode=rw", limits, uri=True)
    if not writable:
        try:
            conn.execute("PRAGMA query_only = ON")
        except BaseException:
            conn.close()
            raise
    return conn


@contextmanager
def reading(path: Path, what: str, limits: Limits | None = None) -> Iterator[GuardedConnection]:
    """open_copy(path), closed after use; an error names the file and what was being read.

    SQLite errors become SnapshotError, limits stay LimitExceeded (with the file named).
    """
    conn = open_copy(path, limits)
    try:
        yield conn
    except LimitExceeded as exc:
        raise type(exc)(f"{path}: reading {what}: {exc}") from None
    except (sqlite3.DatabaseError, UnicodeDecodeError) as exc:
        # A corrupt file can make SQLite's message invalid UTF-8 (UnicodeDecodeError).
        raise SnapshotError(f"{path}: cannot read {what}: {sqlite_message(exc)}") from None
    finally:
        conn.close()


def open_memory(limits: Limits | None = None) -> GuardedConnection:
    """An in-memory database with the same deadline and length limit, for the auditor's DDL.

    The schema there is the auditor's own, not the target's, and with trusted_schema=OFF
    SQLite would refuse CREATE TABLE ... CHECK (json_valid(x)) itself.
    """
    return _connect(":memory:", limits or Limits(), uri=False, trusted_schema=True)

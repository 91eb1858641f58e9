"""A digest of each table's b-tree pages: which tables two copies of a database hold alike.

Row digests cost Python work per row (digest.py); hashing a table's pages costs a read and
sha256 in C. Two copies whose table has the same pages, the same CREATE statement and the
same text encoding hold the same rows (SQLite reads rows from nothing else), so the second
copy's row digests and row comparison can be taken from the first (inspect, retention).

The pages come from SQLite's dbstat table, which walks each b-tree (overflow pages included)
and names each page by its path in the tree; the digest covers each path and the page's
bytes, read from the file. The page numbers are left out, so a table moved to other pages
with the same tree still compares equal; any changed byte in a page makes it differ. The
file must hold every page: a copy in WAL mode is checkpointed first (checkpoint; it is
persistaudit's own copy), and when that cannot finish, or dbstat is not built into this
SQLite, or the file is damaged, no digests are given and every table is read in full.
"""

from __future__ import annotations

import hashlib
import os
import re
import sqlite3
from pathlib import Path

from persistaudit.exceptions import LimitExceeded, PersistauditError
from persistaudit.sqlite_guard import GuardedConnection, Limits, open_copy

BATCH = 1024  # dbstat rows per fetch; their pages are read after each fetch
READ = 4 << 20  # bytes per pread at most, whatever the page size
_VIRTUAL = re.compile(r"\s*create\s+virtual\b", re.IGNORECASE)


def checkpoint(path: Path, limits: Limits | None = None) -> bool:
    """Make the file at path hold every committed page (a WAL copy is checkpointed, a hot
    journal rolled back); whether it now does. Only ever pass persistaudit's own copy."""
    try:
        conn = open_copy(path, limits, writable=True)
    except PersistauditError:
        return False
    try:
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()  # rolls a journal back
        if str(conn.execute("PRAGMA journal_mode").fetchone()[0]).lower() == "wal":
            busy, frames, done = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            return not busy and frames == done
        return True
    except (sqlite3.DatabaseError, PersistauditError):
        return False  # a damaged file, a limit: the inspection reads and reports it
    finally:
        conn.close()


def page_digests(conn: GuardedConnection, path: Path) -> dict[str, str]:
    """{table: digest of its CREATE statement, encoding and pages} for each ordinary table
    of the copy at path, read with conn (open on path, after checkpoint(path) said True);
    {} when they cannot be read, a limit (the deadline) included: then nothing is reused."""
    wal = path.with_name(path.name + "-wal")
    try:
        if wal.exists() and wal.stat().st_size:
            return {}  # frames the file does not hold: checkpoint() was not called
        with conn.stage():
            return _digests(conn, path)
    except (sqlite3.DatabaseError, OSError, LimitExceeded):
        return {}  # no dbstat, a damaged file, the deadline: the inspection reads and reports


def _digests(conn: GuardedConnection, path: Path) -> dict[str, str]:
    encoding = str(conn.execute("PRAGMA encoding").fetchone()[0])
    page_size = int(conn.execute("PRAGMA page_size").fetchone()[0])
    tables = {
        str(name): str(sql or "")
        for name, sql in conn.execute("SELECT name, sql FROM sqlite_master WHERE type = 'table'")
        if not str(name).startswith("sqlite_") and not _VIRTUAL.match(str(sql or ""))
    }
    walks = {name: _Walk(encoding, sql) for name, sql in tables.items()}
    conn.execute("BEGIN")  # one read transaction: the file cannot change under the walk
    try:
        # pread, not mmap: pages mapped into the process would count as its memory (RSS).
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        try:
            cursor = conn.execute("SELECT name, path, pageno FROM dbstat")
            while rows := cursor.fetchmany(BATCH):
                conn.check_deadline()
                for name, where, pageno in rows:
                    if (walk := walks.get(name)) is not None:  # not an index, sqlite_schema
                        walk.visit(str(where), int(pageno))
                for walk in walks.values():
                    if not walk.read(fd, page_size):
                        return {}  # a page past the file's end: damaged
        finally:
            os.close(fd)
    finally:
        conn.execute("COMMIT")
    return {name: walk.hexdigest() for name, walk in walks.items()}


class _Walk:
    """One table's pages in dbstat's order: their paths and their bytes, hashed apart.

    Paths end in NUL and pages have one size, so the two streams together say which bytes
    came at which path. Hashed apart, a run of pages that follow each other in the file is
    read with one pread and hashed with one update, instead of one of each a page.
    """

    def __init__(self, encoding: str, sql: str) -> None:
        self.paths = hashlib.sha256(b"pages\0")
        for part in (encoding, sql):
            data = part.encode()
            self.paths.update(len(data).to_bytes(8, "big") + data)
        self.pages = hashlib.sha256()
        self._where: list[str] = []
        self._runs: list[list[int]] = []  # [first page number, pages]

    def visit(self, where: str, pageno: int) -> None:
        self._where.append(where)
        runs = self._runs
        if runs and runs[-1][0] + runs[-1][1] == pageno:
            runs[-1][1] += 1
        else:
            runs.append([pageno, 1])

    def read(self, fd: int, page_size: int) -> bool:
        """Hash the pages visited since the last read; False when one lies past the end."""
        if self._where:
            self.paths.update("\0".join(self._where).encode() + b"\0")
            self._where.clear()
        for first, count in self._runs:
            at, end = (first - 1) * page_size, (first - 1 + count) * page_size
            while at < end:
                size = min(end - at, max(READ // page_size, 1) * page_size)
                data = os.pread(fd, size, at)
                if len(data) != size:
                    return False
                self.pages.update(data)
                at += size
        self._runs.clear()
        return True

    def hexdigest(self) -> str:
        return hashlib.sha256(self.paths.digest() + self.pages.digest()).hexdigest()

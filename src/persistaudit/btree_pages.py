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

BATCH = 256  # dbstat rows per fetch: their pages (1 MiB of 4 KiB pages) are hashed at once
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
    hashes: dict[str, hashlib._Hash] = {}
    for name, sql in tables.items():
        h = hashes[name] = hashlib.sha256(b"pages\0")
        for part in (encoding, sql):
            data = part.encode()
            h.update(len(data).to_bytes(8, "big") + data)
    conn.execute("BEGIN")  # one read transaction: the file cannot change under the walk
    try:
        # pread, not mmap: pages mapped into the process would count as its memory (RSS).
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        try:
            cursor = conn.execute("SELECT name, path, pageno FROM dbstat")
            while rows := cursor.fetchmany(BATCH):
                conn.check_deadline()
                parts: dict[str, list[bytes]] = {}
                for name, where, pageno in rows:
                    if name not in hashes:  # an index or sqlite_schema
                        continue
                    page = os.pread(fd, page_size, (int(pageno) - 1) * page_size)
                    if len(page) != page_size:
                        return {}  # a page past the file's end: damaged
                    parts.setdefault(name, []).extend((str(where).encode(), b"\0", page))
                for name, chunks in parts.items():  # one update a batch: sha256 in C
                    hashes[name].update(b"".join(chunks))
        finally:
            os.close(fd)
    finally:
        conn.execute("COMMIT")
    return {name: h.hexdigest() for name, h in hashes.items()}

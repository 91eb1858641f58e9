"""What a SQLite database is on disk: its main file's header and its companion files.

The one place that knows them. A database is more than its main file. In WAL mode (the
header's write version is 2) committed transactions may still sit in the -wal file, with
-shm as its index; in rollback mode a -journal left by a write cut short (a "hot" journal)
holds the pages to put back, and the main file may hold pages of a transaction that never
committed. So a copy is the main file plus the companions its mode calls for: one that drops
them shows a state the service never committed. The copy is opened by sqlite_guard.open_copy,
where SQLite replays the WAL or rolls the hot journal back, on the copy.
"""

from __future__ import annotations

import hashlib
import shutil
from dataclasses import dataclass
from pathlib import Path

from persistaudit.exceptions import SnapshotError

MAGIC = b"SQLite format 3\x00"  # the first 16 bytes of every database file
HEADER_SIZE = 100
WAL_COMPANIONS = ("-wal", "-shm")
ROLLBACK_COMPANIONS = ("-journal",)
COMPANIONS = (*WAL_COMPANIONS, *ROLLBACK_COMPANIONS)
WAL_VERSION = 2  # write and read version in WAL mode; 1 is the rollback journal
_ENCODINGS = {1: "UTF-8", 2: "UTF-16le", 3: "UTF-16be"}


def companions(wal: bool) -> tuple[str, ...]:
    """The files SQLite keeps next to a database in WAL mode, or in rollback mode."""
    return WAL_COMPANIONS if wal else ROLLBACK_COMPANIONS


@dataclass(frozen=True)
class Header:
    """The fields of a database's 100-byte header that persistaudit reads."""

    page_size: int  # bytes, 512 to 65536
    write_version: int  # 1 rollback journal, 2 WAL
    read_version: int  # likewise
    text_encoding: str  # "UTF-8", "UTF-16le" or "UTF-16be"; "" until the first table
    page_count: int  # the in-header database size (0 when an old writer left it unset)
    user_version: int  # PRAGMA user_version, which applications use for migrations
    application_id: int  # PRAGMA application_id

    @property
    def wal(self) -> bool:
        return self.write_version == WAL_VERSION

    @property
    def companions(self) -> tuple[str, ...]:
        """The companion files this database's mode calls for."""
        return companions(self.wal)


def is_sqlite(head: bytes) -> bool:
    """Do these first bytes of a file start a SQLite database?"""
    return head.startswith(MAGIC)


def parse_header(data: bytes) -> Header | None:
    """The header at the start of data; None unless data starts with a whole SQLite header.

    Lenient by design: values SQLite would refuse (a page size not a power of two) are kept,
    so that opening the file names the problem.
    """
    if len(data) < HEADER_SIZE or not is_sqlite(data):
        return None

    def number(offset: int, size: int = 4) -> int:
        return int.from_bytes(data[offset : offset + size], "big")

    page_size = number(16, 2)
    change_counter, valid_for = number(24), number(92)
    return Header(
        page_size=65536 if page_size == 1 else page_size,
        write_version=data[18],
        read_version=data[19],
        text_encoding=_ENCODINGS.get(number(56), ""),
        page_count=number(28) if change_counter == valid_for else 0,
        user_version=number(60),
        application_id=number(68),
    )


def header_of(path: Path) -> Header | None:
    """path's header, or None when the file does not start with one (OSError if unreadable)."""
    with path.open("rb") as fh:
        return parse_header(fh.read(HEADER_SIZE))


def read_header(path: Path) -> Header:
    """path's header; SnapshotError when it cannot be read or is not a SQLite database."""
    try:
        with path.open("rb") as fh:
            head = fh.read(HEADER_SIZE)
    except OSError as exc:
        raise SnapshotError(f"{path}: cannot read: {exc}") from None
    if not head:
        raise SnapshotError(f"{path}: the database file is empty (0 bytes)")
    header = parse_header(head)
    if header is not None:
        return header
    if is_sqlite(head):
        raise SnapshotError(
            f"{path}: not a SQLite database (its header is cut short at {len(head)} bytes)"
        )
    raise SnapshotError(f"{path}: not a SQLite database (wrong header; encrypted or corrupt?)")


def companion(path: Path, suffix: str) -> Path:
    """The companion file of the database path with suffix (app.db -> app.db-wal)."""
    return path.with_name(path.name + suffix)


def database_files(path: Path) -> list[Path]:
    """The main file, then each companion its header calls for that exists."""
    wanted = read_header(path).companions
    return [path, *(side for s in wanted if (side := companion(path, s)).is_file())]


def copy_database(src: Path, dest: Path) -> dict[str, int]:
    """Copy the database src, with the companions that matter, to dest (and dest-wal, ...).

    Returns the bytes copied per source file name. The copy is whole or absent: on an error
    what was copied is removed and SnapshotError names the file.
    """
    for suffix in COMPANIONS:  # a stale one would be replayed or rolled back onto the copy
        companion(dest, suffix).unlink(missing_ok=True)
    copied: dict[str, int] = {}
    targets: list[Path] = []
    try:
        for source in database_files(src):
            target = dest.with_name(dest.name + source.name[len(src.name) :])
            targets.append(target)
            shutil.copyfile(source, target)
            copied[source.name] = target.stat().st_size
    except BaseException as exc:
        for target in targets:
            target.unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise SnapshotError(f"{src}: cannot copy the database to {dest}: {exc}") from None
        raise
    return copied


HASH_CHUNK = 1024 * 1024


@dataclass(frozen=True)
class Digest:
    """A file as an auditor can later recognise it."""

    sha256: str
    size: int


def digest_of(path: Path) -> Digest:
    """SHA-256 and size of one file, read in chunks."""
    h = hashlib.sha256()
    size = 0
    with path.open("rb") as f:
        while chunk := f.read(HASH_CHUNK):
            h.update(chunk)
            size += len(chunk)
    return Digest(h.hexdigest(), size)

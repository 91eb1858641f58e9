"""A consistent copy of a live SQLite database, taken out of its container.

Relies on nothing inside the target image: the container is paused, the database and its
companion files are copied through the Docker API, then it is unpaused. Which companions
matter follows from the copied file's header (sqlite_files): -wal and -shm in WAL mode, a hot
-journal otherwise.
The copy is inspected on the host; the container's files are never opened for writing.

Each file is streamed once, from the API's tar stream straight to its destination (tarstream:
the engine's chunks are written as they come, and hashed on the way for the fingerprint), within a
budget: database.max_size for all the files together, and never more than the destination's
free space less a margin. A database over it is DatabaseTooLarge (the checks are BLOCKED).
A file the host can read on a local engine's volume is copied in the kernel instead, and
hashed once the container is unpaused (host_copy).
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import os
import shutil
import tarfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from persistaudit import host_copy, tarstream
from persistaudit.config import format_size
from persistaudit.exceptions import (
    DatabaseMissing,
    DatabaseTooLarge,
    PersistauditError,
    SnapshotError,
    TargetRemoved,
)
from persistaudit.runtime.base import ContainerHandle
from persistaudit.runtime.restore import FileOwner
from persistaudit.sqlite_files import COMPANIONS, companions, digest_of, header_of
from persistaudit.tarstream import StreamBroken as StreamBroken  # layer_files' import

FREE_SPACE_MARGIN = 256 * 1024**2  # left free on the host's disk by a copy


@dataclass(frozen=True)
class Snapshot:
    path: Path  # the host copy of the main database file
    container_path: str
    files: dict[str, int]  # file name in the container -> bytes copied
    pause_ms: float
    companions: tuple[str, ...] = ()  # those the header called for, copied where they existed
    owner: FileOwner | None = None  # the main file's owner and mode in the container
    sha256: dict[str, str] = field(default_factory=dict)  # file name -> SHA-256 of its copy

    @property
    def fingerprint(self) -> str:
        """One digest of the files copied (by suffix): equal only for byte-identical copies,
        which hold the same database whatever SQLite makes of them; "" when unknown.

        The -shm is left out: it is only an index of the -wal, which the first connection to
        a copy truncates and rebuilds (tests/unit/test_fingerprint.py shows it), and a service
        that merely reconnects rewrites it.
        """
        if set(self.sha256) != set(self.files):
            return ""
        name = self.path.name
        suffixes = {n: n[len(name) :] for n in self.sha256}
        parts = sorted(
            f"{suffixes[n]}={h}" for n, h in self.sha256.items() if suffixes[n] != "-shm"
        )
        return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def take_snapshot(
    container: ContainerHandle, db_path: str, dest: Path, *, max_size: int
) -> Snapshot:
    """Copy db_path and its companion files out of the container into the folder dest.

    The container is unpaused whatever happens; a failed copy raises SnapshotError, a
    database over the budget DatabaseTooLarge.
    """
    result = take_snapshots(container, [Wanted(db_path, dest, max_size)])[0]
    if isinstance(result, PersistauditError):
        raise result
    return result


@dataclass(frozen=True)
class Wanted:
    """A database to copy out: its path in the container, the host folder, its budget."""

    db_path: str
    dest: Path
    max_size: int


def take_snapshots(
    container: ContainerHandle, wanted: list[Wanted]
) -> list[Snapshot | PersistauditError]:
    """Copy several databases out of the container in one pause: mutually consistent copies.

    One result per database, in order: its snapshot, or why it could not be copied (the
    others are still copied). A container removed meanwhile (TargetRemoved) and interrupts
    propagate, with nothing left half-copied.
    """
    results: list[Snapshot | PersistauditError] = []
    started = time.monotonic()
    try:
        with container.paused():
            for want in wanted:
                try:
                    results.append(_copy_one(container, want))
                except TargetRemoved:
                    raise
                except PersistauditError as exc:
                    results.append(exc)
    except BaseException:
        for want, result in zip(wanted, results, strict=False):
            if isinstance(result, Snapshot):
                _discard(want)
        raise
    pause_ms = (time.monotonic() - started) * 1000
    return [
        dataclasses.replace(hash_copies(r), pause_ms=pause_ms) if isinstance(r, Snapshot) else r
        for r in results
    ]


def _discard(want: Wanted) -> None:
    name = PurePosixPath(want.db_path).name
    for copied in [name, *(name + s for s in COMPANIONS)]:
        (want.dest / copied).unlink(missing_ok=True)


def _copy_one(container: ContainerHandle, want: Wanted) -> Snapshot:
    """One database and its companions, copied whole or not at all (the container is paused)."""
    want.dest.mkdir(parents=True, exist_ok=True)
    name = PurePosixPath(want.db_path).name
    files: dict[str, int] = {}
    owners: dict[str, FileOwner] = {}
    digests: dict[str, str] = {}
    try:
        wanted = _copy_all(
            container,
            want.db_path,
            want.dest,
            name,
            Budget(want.dest, want.max_size),
            files,
            owners,
            digests,
        )
    except BaseException:
        _discard(want)  # no snapshot, rather than half of one
        raise
    return Snapshot(want.dest / name, want.db_path, files, 0.0, wanted, owners.get(name), digests)


def _copy_all(
    container: ContainerHandle,
    db_path: str,
    dest: Path,
    name: str,
    budget: Budget,
    files: dict[str, int],
    owners: dict[str, FileOwner],
    digests: dict[str, str],
) -> tuple[str, ...]:
    """The database, then the companions its header calls for (returned); files gets what
    was copied, owners the main file's owner and mode, digests each file's SHA-256."""
    size = _copy_file(container, db_path, dest / name, budget, owners, digests)
    if size is None:
        raise DatabaseMissing(
            f"database file {db_path} does not exist in container {container.name}. "
            "Hint: check database.path in the config against where the service writes."
        )
    files[name] = size
    header = header_of(dest / name)  # None for a file that is no database: inspect says so
    wanted = companions(header is not None and header.wal)
    # Concurrent copies keep the pause short; each is one Docker API round trip.
    with ThreadPoolExecutor(max_workers=len(wanted)) as pool:
        sizes = pool.map(
            lambda s: _copy_file(container, db_path + s, dest / (name + s), budget, None, digests),
            wanted,
        )
        for suffix, companion_size in zip(wanted, sizes, strict=True):
            if companion_size is not None:
                files[name + suffix] = companion_size
    return wanted


class Budget:
    """Bytes that may still be copied: database.max_size in all, and what the disk has free."""

    def __init__(self, dest: Path, max_size: int, margin: int = FREE_SPACE_MARGIN) -> None:
        self.dest = dest
        self.max_size = max_size
        self.margin = margin
        self.free = shutil.disk_usage(dest).free - margin
        self.used = 0
        self._lock = threading.Lock()

    def reserve(self, what: str, size: int) -> None:
        """Count size bytes of what against the budget; raise DatabaseTooLarge when over."""
        with self._lock:
            total = self.used + size
            with_others = f" ({format_size(total)} with the files before it)" if self.used else ""
            if total > self.max_size:
                raise DatabaseTooLarge(
                    f"{what} is {format_size(size)}{with_others}, over the limit of "
                    f"{format_size(self.max_size)} (database.max_size). Hint: raise "
                    "database.max_size in the config if the host can hold a copy that large."
                )
            if total > self.free:
                raise DatabaseTooLarge(
                    f"{what} is {format_size(size)}{with_others}, more than the "
                    f"{format_size(max(self.free, 0))} free in {self.dest} (keeping "
                    f"{format_size(self.margin)} free). Hint: set TMPDIR to a larger disk."
                )
            self.used = total


class ChunkReader(io.RawIOBase):
    """A readable file over an iterator of byte chunks, such as the engine's archive stream."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._pending = memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        while not self._pending:
            try:
                chunk = next(self._chunks)
            except StopIteration:
                return 0
            except Exception as exc:  # the transport's errors are many; all end the copy
                raise StreamBroken(f"{type(exc).__name__}: {exc}") from exc
            self._pending = memoryview(chunk)
        n = min(len(buffer), len(self._pending))
        buffer[:n] = self._pending[:n]
        self._pending = self._pending[n:]
        return n


def _copy_file(
    container: ContainerHandle,
    path: str,
    target: Path,
    budget: Budget,
    owners: dict[str, FileOwner] | None = None,
    digests: dict[str, str] | None = None,
) -> int | None:
    """Stream one file out of the container to target; its size, or None if it does not exist.

    A file the host can read (host_copy) is copied in the kernel, and its digest left for
    hash_copies once the service runs again."""
    where = f"{path} in container {container.name}"
    host_file = getattr(container, "host_file", None)  # DockerContainer's; not every handle's
    opened = host_file(path) if host_file is not None else None
    if opened is not None:
        fd, info = opened
        try:
            return _copy_host_file(fd, info, where, target, budget, owners)
        except BaseException:
            target.unlink(missing_ok=True)
            raise
    stream = container.get_archive(path)
    if stream is None:
        return None
    try:
        return copy_member(stream, where, target, budget, owners, digests)
    except BaseException:
        target.unlink(missing_ok=True)
        raise


def _copy_host_file(
    fd: int,
    info: os.stat_result,
    where: str,
    target: Path,
    budget: Budget,
    owners: dict[str, FileOwner] | None,
) -> int:
    """The file open at fd (read on the host) to target: what copy_member does with the
    engine's archive of it, but copied in the kernel and hashed later."""
    try:
        budget.reserve(where, info.st_size)
    except BaseException:
        os.close(fd)
        raise
    if owners is not None:
        owners[target.name] = FileOwner(info.st_uid, info.st_gid, info.st_mode & 0o7777)
    try:
        copied = host_copy.copy_to(fd, info, target)
    except OSError as exc:
        raise SnapshotError(f"{where}: the copy failed writing to {target}: {exc}") from None
    if copied != info.st_size:
        raise SnapshotError(
            f"{where}: the copy failed, the file was cut off at {copied} of {info.st_size} bytes"
        )
    return copied


def hash_copies(snapshot: Snapshot) -> Snapshot:
    """snapshot with the SHA-256 of each copied file it lacks (those copied in the kernel);
    a file that cannot be read again is left without one (no fingerprint: read in full)."""
    for name in snapshot.files:
        if name not in snapshot.sha256:
            try:
                snapshot.sha256[name] = digest_of(snapshot.path.parent / name).sha256
            except OSError:
                continue
    return snapshot


def copy_member(
    stream: Iterator[bytes],
    where: str,
    target: Path,
    budget: Budget,
    owners: dict[str, FileOwner] | None = None,
    digests: dict[str, str] | None = None,
) -> int:
    """Write the one regular file of a tar stream to target, reading the stream once; owners,
    when given, gets the file's owner and mode from its header, digests its SHA-256 (both by
    target's name)."""
    chunks = tarstream.Chunks(stream)
    try:
        member = tarstream.next_member(chunks)
        if member is None:
            raise SnapshotError(f"{where}: the engine sent an empty archive")
        if member.issym() or member.islnk():
            raise SnapshotError(
                f"{where} is a link to {member.linkname}, not a regular file. "
                "Hint: set database.path to the file it points to."
            )
        if not member.isfile():
            raise SnapshotError(f"{where} is not a regular file")
        budget.reserve(where, member.size)
        if owners is not None:
            owners[target.name] = FileOwner.of(member)
        digest = hashlib.sha256()
        with target.open("wb") as out:
            for view in tarstream.member_data(chunks, member):
                out.write(view)
                digest.update(view)  # while the engine sends the next chunk
        if tarstream.next_member(chunks) is not None:
            raise SnapshotError(f"{where}: the engine's archive holds more than one file")
        if digests is not None:
            digests[target.name] = digest.hexdigest()
        return member.size
    except StreamBroken as exc:
        raise SnapshotError(f"{where}: the copy failed, the engine's stream broke: {exc}") from None
    except (tarfile.TarError, EOFError) as exc:
        raise SnapshotError(
            f"{where}: the copy failed, the engine's archive is malformed or cut off: {exc}"
        ) from None
    except OSError as exc:
        raise SnapshotError(f"{where}: the copy failed writing to {target}: {exc}") from None

"""SQLite files a service wrote in its container layer, where a re-created container loses them.

The engine lists what a container added or changed outside its mounts (docker diff; read from
the layer's host folder when the engine is local, see upper_dir); each
candidate's first bytes are read through the archive API and matched against the SQLite
header (sqlite_files.is_sqlite). Bounded: at most MAX_EXAMINED files, likely database names
first, and of each only the tar header and the first 16 bytes are read before the stream is
closed. Kernel and temporary folders are left out (IGNORED_ROOTS): files there are scratch by
convention, and a database kept in /tmp is not data a service promises to keep.
"""

from __future__ import annotations

import posixpath
import tarfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from persistaudit.mounts import covers
from persistaudit.runtime.base import ContainerHandle
from persistaudit.snapshot import ChunkReader, StreamBroken
from persistaudit.sqlite_files import COMPANIONS, MAGIC, is_sqlite
from persistaudit.upper_dir import DOCKER_DIFF

IGNORED_ROOTS = ("/proc", "/sys", "/dev", "/tmp", "/var/tmp", "/run")
MAX_EXAMINED = 200  # files whose header is read, per scan
LIKELY_SUFFIXES = (".db", ".sqlite", ".sqlite3", ".db3")


@dataclass(frozen=True)
class LayerScan:
    """What one look at the container layer found."""

    when: str  # "after the fresh install", "before the re-create"
    changed: list[str]  # added or changed paths outside every mount and IGNORED_ROOTS
    databases: list[str]  # those that are SQLite databases (by their header)
    ignored: int = 0  # paths under IGNORED_ROOTS, not examined
    unexamined: list[str] = field(default_factory=list)  # candidates past MAX_EXAMINED
    listed_by: str = DOCKER_DIFF  # how the changed paths were listed, for the evidence


def scan(
    container: ContainerHandle,
    when: str,
    *,
    limit: int = MAX_EXAMINED,
    before_reading: Callable[[], object] = lambda: None,
) -> LayerScan:
    """The SQLite files in the container's layer; TargetRemoved if the container is gone.

    before_reading is called between listing the layer and reading the candidates' first
    bytes: a scan beside a snapshot waits there until the container is unpaused (reading a
    file out of a container while the engine freezes it can make the freeze fail).
    """
    mounts = [m.destination for m in container.mounts()]
    changed = container.changed_files()
    listed_by = str(getattr(container, "layer_listed_by", "") or DOCKER_DIFF)
    before_reading()
    outside = [p for p in changed if not any(covers(m, p) for m in mounts)]
    kept = [p for p in outside if not any(covers(root, p) for root in IGNORED_ROOTS)]
    listed = set(kept)
    folders = {posixpath.dirname(p) for p in kept}
    candidates = sorted(
        (p for p in kept if p not in folders and not _companion_of(p, listed)),
        key=lambda p: (not p.lower().endswith(LIKELY_SUFFIXES), p),
    )
    examined, rest = candidates[:limit], candidates[limit:]
    found = sorted(p for p in examined if is_sqlite(head(container, p)))
    return LayerScan(when, kept, found, len(outside) - len(kept), rest, listed_by)


def _companion_of(path: str, listed: set[str]) -> bool:
    """A -wal, -shm or -journal beside a listed file: read with it, never on its own."""
    return any(path.endswith(s) and path[: -len(s)] in listed for s in COMPANIONS)


def head(container: ContainerHandle, path: str, size: int = len(MAGIC)) -> bytes:
    """The first bytes of a regular file in the container; b"" for anything else or an error.

    Reads the archive stream only as far as those bytes, then closes it.
    """
    stream = container.get_archive(path)
    if stream is None:
        return b""
    try:
        with tarfile.open(fileobj=ChunkReader(stream), mode="r|") as tar:
            member = tar.next()
            if member is None or not member.isfile():
                return b""
            data = tar.extractfile(member)
            return data.read(size) if data is not None else b""
    except (tarfile.TarError, EOFError, OSError, StreamBroken):
        return b""
    finally:
        _close(stream)


def _close(stream: Iterator[bytes]) -> None:
    close = getattr(stream, "close", None)
    if callable(close):
        close()

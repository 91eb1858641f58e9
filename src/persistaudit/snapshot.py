"""A consistent copy of a live SQLite database, taken out of its container.

Relies on nothing inside the target image: the container is paused, the database and its
sidecar files are copied through the Docker API, then it is unpaused. Which sidecars matter
follows from the copied file's header: -wal and -shm in WAL mode, a hot -journal otherwise.
The copy is inspected on the host; the container's files are never opened for writing.
"""

from __future__ import annotations

import shutil
import tarfile
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from persistaudit.exceptions import SnapshotError
from persistaudit.runtime.base import DockerContainer

WAL_SIDECARS = ("-wal", "-shm")
ROLLBACK_SIDECARS = ("-journal",)
WAL_HEADER_VERSION = 2  # byte 18 of the database header


@dataclass(frozen=True)
class Snapshot:
    path: Path  # the host copy of the main database file
    container_path: str
    files: dict[str, int]  # file name in the container -> bytes copied
    pause_ms: float


def take_snapshot(container: DockerContainer, db_path: str, dest: Path) -> Snapshot:
    """Copy db_path and its sidecar files out of the container into the folder dest."""
    dest.mkdir(parents=True, exist_ok=True)
    name = PurePosixPath(db_path).name
    files: dict[str, int] = {}
    started = time.monotonic()
    with container.paused():
        size = _copy_file(container, db_path, dest / name)
        if size is None:
            raise SnapshotError(
                f"database file {db_path} does not exist in container {container.name}. "
                "Hint: check database.path in the config against where the service writes."
            )
        files[name] = size
        with (dest / name).open("rb") as fh:
            header = fh.read(19)
        wal = len(header) == 19 and header[18] == WAL_HEADER_VERSION
        sidecars = WAL_SIDECARS if wal else ROLLBACK_SIDECARS
        # Concurrent copies keep the pause short; each is one Docker API round trip.
        with ThreadPoolExecutor(max_workers=len(sidecars)) as pool:
            sizes = pool.map(
                lambda s: _copy_file(container, db_path + s, dest / (name + s)), sidecars
            )
            for suffix, sidecar_size in zip(sidecars, sizes, strict=True):
                if sidecar_size is not None:
                    files[name + suffix] = sidecar_size
    pause_ms = (time.monotonic() - started) * 1000
    return Snapshot(dest / name, db_path, files, pause_ms)


def _copy_file(container: DockerContainer, path: str, target: Path) -> int | None:
    stream = container.get_archive(path)
    if stream is None:
        return None
    with tempfile.TemporaryFile() as buffer:
        for chunk in stream:
            buffer.write(chunk)
        buffer.seek(0)
        with tarfile.open(fileobj=buffer, mode="r|") as tar:
            for member in tar:
                if not member.isfile():
                    raise SnapshotError(
                        f"{path} in container {container.name} is not a regular file"
                    )
                source = tar.extractfile(member)
                assert source is not None
                with target.open("wb") as out:
                    shutil.copyfileobj(source, out)
                return member.size
    return None

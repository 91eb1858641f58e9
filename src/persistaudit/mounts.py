"""Is the database on persistent storage? Judged from the container's mounts (what the engine
did) and, for a compose service, the model's (what the author declared). Pure functions."""

from __future__ import annotations

import posixpath
from collections.abc import Sequence
from dataclasses import dataclass

from persistaudit.runtime.base import DeclaredMount, Mount
from persistaudit.sqlite_files import companions


@dataclass(frozen=True)
class MountVerdict:
    mount: Mount | None  # the mount holding the database's folder
    problems: list[str]

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def kind(self) -> str:
        if self.mount is None:
            return "container layer"
        if self.mount.anonymous:
            return "anonymous volume"
        return "named volume" if self.mount.type == "volume" else self.mount.type


def covers(mount_point: str, path: str) -> bool:
    mount_point = mount_point.rstrip("/") or "/"
    return path == mount_point or path.startswith(mount_point.rstrip("/") + "/")


def companion_files(wal: bool) -> str:
    """The companion files SQLite writes next to a database in that mode, for a sentence."""
    names = companions(wal)
    files = " and ".join(names)
    return f"{files} file{'s' if len(names) > 1 else ''}"


def declared_line(m: DeclaredMount) -> str:
    """One declared mount as the evidence shows it."""
    source = (m.source or "(anonymous)") if m.type in ("volume", "anonymous") else m.source
    line = f"{m.type:<9} {source or '-'} -> {m.target} ({'ro' if m.read_only else 'rw'})"
    if m.redirected_to:
        line += f"; this run mounted {m.redirected_to} in its place"
    if m.network_fs:
        line += f"; network filesystem: {m.network_fs}"
    return line


def as_mounts(declared: Sequence[DeclaredMount]) -> list[Mount]:
    """The model's mounts as a container would have them: for judging a service whose
    container never came to exist (its start failed), from the model alone."""
    return [
        Mount(
            type="volume" if d.type == "anonymous" else d.type,
            source=d.source,
            destination=d.target,
            name=d.source if d.type == "volume" else "",
            rw=not d.read_only,
            anonymous=d.type == "anonymous",
        )
        for d in declared
    ]


def evaluate(
    mounts: list[Mount],
    db_path: str,
    *,
    wal: bool = True,
    declared: Sequence[DeclaredMount] = (),
) -> MountVerdict:
    """Judge where db_path lives; wal says which companion files SQLite writes beside it.

    declared is the compose model's view of the same mounts: a WAL database whose mount the
    model puts on a network filesystem (NFS, CIFS) is a finding, even where this run's engine
    mounted something local in its place.
    """
    folder = posixpath.dirname(db_path)
    file_mount = next((m for m in mounts if m.destination == db_path), None)
    holders = sorted(
        (m for m in mounts if covers(m.destination, folder)),
        key=lambda m: len(m.destination),
        reverse=True,
    )
    mount = holders[0] if holders else None
    problems = []
    if file_mount is not None:
        problems.append(
            f"{db_path} is mounted as a single file ({file_mount.type} from {file_mount.source}): "
            f"its {companion_files(wal)} {'are' if wal else 'is'} written to {folder} on the "
            "container layer"
        )
    if mount is None:
        if file_mount is None:
            problems.append(
                f"{folder} is on the container layer: no volume or bind mount holds it, "
                "so removing the container loses the database"
            )
    elif mount.type not in ("volume", "bind"):
        problems.append(
            f"{folder} is on a {mount.type} mount at {mount.destination}: not persistent"
        )
    elif mount.anonymous:
        problems.append(
            f"{folder} is on an anonymous volume at {mount.destination}: a re-created container "
            "gets a new one, so the data is orphaned"
        )
    if mount is not None and not mount.rw:
        problems.append(f"{mount.destination} is mounted read-only")
    intent = next((d for d in declared if mount and d.target == mount.destination), None)
    if wal and intent is not None and intent.network_fs:
        problems.append(
            f"{db_path} is a WAL database on a network filesystem ({intent.network_fs}): WAL "
            "needs shared memory between the processes using it, which NFS and CIFS do not "
            "provide, so the database can be corrupted"
        )
    return MountVerdict(mount, problems)

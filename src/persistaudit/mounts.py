"""Is the database on persistent storage? Judged from the container's mounts. Pure function."""

from __future__ import annotations

import posixpath
from dataclasses import dataclass

from persistaudit.runtime.base import Mount
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


def evaluate(mounts: list[Mount], db_path: str, *, wal: bool = True) -> MountVerdict:
    """Judge where db_path lives; wal says which companion files SQLite writes beside it."""
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
    return MountVerdict(mount, problems)

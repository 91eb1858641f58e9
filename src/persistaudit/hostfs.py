"""Which filesystem holds a host path, and whether it is a network one. Pure functions.

SQLite's WAL mode keeps its index in shared memory (the -shm file, mmap'ed by every process
using the database); NFS, CIFS and their kin do not make that memory coherent between
machines, so a WAL database on them can be corrupted (https://sqlite.org/wal.html, "WAL does
not work over a network filesystem").
"""

from __future__ import annotations

import posixpath
from pathlib import Path

# Filesystem types (mountinfo's, and volume driver_opts' `type`) that are network filesystems.
NETWORK_FS = frozenset(
    {"nfs", "nfs4", "cifs", "smb", "smb3", "smbfs", "9p", "afs", "ceph", "glusterfs", "fuse.sshfs"}
)
MOUNTINFO = Path("/proc/self/mountinfo")


def is_network(fs_type: str) -> bool:
    return fs_type.strip().lower() in NETWORK_FS


def _unescape(field: str) -> str:
    """mountinfo writes space, tab, newline and backslash in paths as octal escapes (\\040)."""
    out, i = [], 0
    while i < len(field):
        if field[i] == "\\" and field[i + 1 : i + 4].isdigit():
            out.append(chr(int(field[i + 1 : i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def mount_points(mountinfo: str) -> list[tuple[str, str]]:
    """(mount point, filesystem type) of each line of a /proc/PID/mountinfo text."""
    out = []
    for line in mountinfo.splitlines():
        fields = line.split()
        if "-" not in fields:
            continue
        sep = fields.index("-")
        if len(fields) < 5 or len(fields) <= sep + 1:
            continue
        out.append((_unescape(fields[4]), fields[sep + 1]))
    return out


def fs_type_of(path: str, mountinfo: str) -> str:
    """The type of the filesystem holding path: that of its longest covering mount point.

    The last of equal mount points wins (it is mounted over the others). "" when none covers it.
    """
    path = posixpath.normpath(path)
    best, best_len = "", -1
    for point, fs_type in mount_points(mountinfo):
        covers = point == "/" or path == point or path.startswith(point.rstrip("/") + "/")
        if covers and len(point) >= best_len:
            best, best_len = fs_type, len(point)
    return best


def host_fs_type(path: str) -> str:
    """The filesystem type of a path on this machine ("" when it cannot be read)."""
    try:
        text = MOUNTINFO.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    try:
        resolved = str(Path(path).resolve())
    except (OSError, RuntimeError):
        resolved = path
    return fs_type_of(resolved, text)

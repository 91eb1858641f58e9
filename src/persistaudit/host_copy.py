"""A file on a container's volume read from the host, when the engine is local: the snapshot's
copy without the engine's archive call.

Each `get_archive` costs the engine about 50 ms (it mounts the container's filesystem for
it), and a snapshot makes up to four of them while the service is paused. A named volume or a
bind mount is a host folder (the mount's Source); when persistaudit runs beside a local
engine with the rights to read it, the file is read there, in the same pause, as the same
one-file tar stream the engine would send (name, size, mode, owner).

Used only where the host's view is the container's without doubt; anything else returns None
and the caller asks the engine:
- the engine is on its local unix socket and maps no user ids (no userns-remap, not
  rootless: the owner recorded must be the container's);
- the path is under a `volume` mount of the local driver or a `bind` mount, with no subpath;
- every folder on the way and the file itself are opened with O_NOFOLLOW below the mount's
  Source (a link, which the engine resolves inside the container, is the engine's to read),
  and the file is a regular file (a fifo is opened non-blocking and left to the engine).
A file missing on the host is asked of the engine too (a missing answer costs it little).

The snapshot copies such a file with copy_to, in the kernel (copy_file_range), and hashes the
copy once the service runs again: the pause lasts as long as the kernel's copy, not as long
as reading, writing and hashing every byte in Python (a gigabyte: about 0.5 s, not 4 s).
"""

from __future__ import annotations

import os
import posixpath
import stat
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

LOCAL_SOCKET = "http+docker://localhost"  # the docker SDK's base_url for a unix socket
CHUNK = 1024 * 1024
KERNEL_CHUNK = 64 * 1024 * 1024  # bytes per copy_file_range call: Ctrl-C is seen between them
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


def maps_ids(security_options: list[str]) -> bool:
    """Whether the engine maps user ids (docker info's SecurityOptions)."""
    return any("name=userns" in option or "name=rootless" in option for option in security_options)


def host_source(attrs: dict[str, Any], path: str) -> tuple[str, list[str]] | None:
    """The host folder of the mount path is under, and path's parts below it; None when the
    mount is not one the host can read the same way (see the module's docstring)."""
    from persistaudit.mounts import covers  # mounts imports the runtime, which imports this

    host_config = attrs.get("HostConfig") or {}
    requested = host_config.get("Mounts") or []
    if any((m.get("VolumeOptions") or {}).get("Subpath") for m in requested):
        return None
    # `--tmpfs` mounts are not in Mounts: one inside a volume hides the volume's folder there.
    tmpfs = [{"Type": "tmpfs", "Destination": d} for d in host_config.get("Tmpfs") or {}]
    best: dict[str, Any] | None = None
    for mount in [*(attrs.get("Mounts") or []), *tmpfs]:
        destination = mount.get("Destination")
        if not isinstance(destination, str) or not covers(destination, path):
            continue
        if best is None or len(destination) > len(best["Destination"]):
            best = mount
    if best is None:
        return None
    source = best.get("Source")
    if best.get("Type") == "volume" and best.get("Driver") != "local":
        return None
    if best.get("Type") not in ("volume", "bind") or not isinstance(source, str):
        return None
    if not os.path.isabs(source):
        return None
    parts = posixpath.relpath(posixpath.normpath(path), best["Destination"]).split("/")
    if not parts or any(p in ("", ".", "..") for p in parts):
        return None
    return source, parts


def open_file(source: str, parts: list[str]) -> tuple[int, os.stat_result] | None:
    """The regular file at source/parts opened without following any link, and its stat;
    None for anything else (a link, a fifo, a folder, missing, unreadable)."""
    try:
        folder = os.open(source, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        for part in parts[:-1]:
            inner = os.open(part, _DIR_FLAGS, dir_fd=folder)
            os.close(folder)
            folder = inner
        fd = os.open(parts[-1], _FILE_FLAGS, dir_fd=folder)
    except OSError:
        return None
    finally:
        os.close(folder)
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        return None
    return fd, info


def tar_stream(fd: int, info: os.stat_result, name: str) -> Iterator[bytes]:
    """The file as the one-member tar stream the engine's archive API sends; closes fd.

    Exactly the size fstat gave is sent (the service is paused): a file that shrank meanwhile
    ends the stream short, which the reader reports as a cut-off archive."""
    try:
        member = tarfile.TarInfo(name)
        member.size = info.st_size
        member.mode = info.st_mode & 0o7777
        member.uid, member.gid = info.st_uid, info.st_gid
        member.mtime = int(info.st_mtime)
        member.type = tarfile.REGTYPE
        yield member.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")
        left = info.st_size
        while left:
            chunk = os.read(fd, min(CHUNK, left))
            if not chunk:
                return
            left -= len(chunk)
            yield chunk
        padding = -info.st_size % tarfile.BLOCKSIZE
        yield b"\0" * (padding + 2 * tarfile.BLOCKSIZE)
    finally:
        os.close(fd)


def copy_to(fd: int, info: os.stat_result, target: Path) -> int:
    """Copy the file open at fd to target (created or truncated): at most info.st_size bytes,
    the size it had when opened (the service is paused). Returns the bytes copied, fewer when
    the file shrank meanwhile; closes fd. OSError when target cannot be written.

    copy_file_range copies in the kernel; where it cannot (another filesystem on an old
    kernel, no such call), the bytes go through a buffer of CHUNK instead."""
    try:
        out = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        try:
            return _kernel_copy(fd, out, info.st_size)
        finally:
            os.close(out)
    finally:
        os.close(fd)


def _kernel_copy(fd: int, out: int, size: int) -> int:
    done = 0
    copy_range = getattr(os, "copy_file_range", None)
    while copy_range is not None and done < size:
        try:
            n = copy_range(fd, out, min(KERNEL_CHUNK, size - done), done, done)
        except OSError:
            break  # EXDEV, ENOSYS, EINVAL...: the same bytes through a buffer, from done on
        if n == 0:
            return done  # the file ends early: it shrank
        done += n
    while done < size:
        chunk = os.pread(fd, min(CHUNK, size - done), done)
        if not chunk:
            break
        os.pwrite(out, chunk, done)
        done += len(chunk)
    return done

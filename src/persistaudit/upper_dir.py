"""The container layer listed from the host's overlay upper directory, when the engine is local.

`docker diff` costs the engine about 0.4 s however little changed (it mounts the layer to
compare it), and the engine holds the container meanwhile: a copy taken beside it waits for
it. With the overlay2 driver, the container's own layer is one host folder (UpperDir): every
entry in it is a path the container added or changed, and a whiteout (a 0:0 character
device) one it deleted, which is what `docker diff` reports. Walking that folder takes
milliseconds.

Used only when the folder can be trusted to be this container's: the engine is reached on
its local unix socket, the driver is overlay2 and the folder exists and is readable here.
Anything else (a remote engine, Docker Desktop's VM, another driver, no permission) returns
None and the caller asks the engine. The walk never follows a link, never reads a file, and
stops past MAX_ENTRIES entries (a layer of millions of files is the engine's to list).
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from typing import Any

from persistaudit.host_copy import LOCAL_SOCKET

DRIVERS = ("overlay2", "overlay")
MAX_ENTRIES = 100_000
MAX_DEPTH = 200  # folder levels walked; deeper is the engine's to list
# How a listing was made, as the evidence names it (layer_files.LayerScan.listed_by).
DOCKER_DIFF = "docker diff"
FROM_HOST = "read from the layer's folder on the host, as docker diff lists it"


def upper_dir(attrs: dict[str, Any], base_url: str) -> Layer | None:
    """The host folders of the container's layer, or None when they cannot be used here."""
    if base_url != LOCAL_SOCKET:
        return None
    driver = attrs.get("GraphDriver") or {}
    if driver.get("Name") not in DRIVERS:
        return None
    data = driver.get("Data") or {}
    upper, lower = data.get("UpperDir"), data.get("LowerDir") or ""
    if not isinstance(upper, str) or not isinstance(lower, str):
        return None
    lowers = tuple(d for d in lower.split(":") if d)
    if not all(_readable_folder(d) for d in (upper, *lowers)):
        return None
    return Layer(upper, lowers)


def _readable_folder(path: str) -> bool:
    if not os.path.isabs(path):
        return False
    try:
        info = os.stat(path, follow_symlinks=False)
    except OSError:
        return False
    return stat.S_ISDIR(info.st_mode) and os.access(path, os.R_OK | os.X_OK)


@dataclass(frozen=True)
class Layer:
    upper: str  # the container's own layer: what it added, changed and deleted (whiteouts)
    lowers: tuple[str, ...]  # the image's layers under it, topmost first


class _TooMany(Exception):
    """More entries or deeper folders than a walk takes on: the engine lists them."""


def changed_paths(layer: Layer, limit: int = MAX_ENTRIES) -> list[str] | None:
    """Paths added or changed in the layer, sorted, as docker diff lists them (kinds A and
    C); None past limit entries, MAX_DEPTH levels, or when a folder cannot be read.

    docker diff lists every file of the upper folder, and a folder when it is new, its
    owner or mode differ from the image's, or anything under it was listed or deleted (a
    folder only copied up, its contents since removed, is not listed)."""
    found: list[str] = []
    try:
        _walk(layer, "", found, [0], limit, 0)
    except _TooMany:
        return None
    except FileNotFoundError:
        return None  # the container (and its layer) went away: the engine says so
    except OSError:
        return None
    return sorted(found)


def _walk(
    layer: Layer, inside: str, found: list[str], seen: list[int], limit: int, depth: int
) -> bool:
    """List the changes under one folder of the layer; whether any (or a deletion) was seen."""
    if depth > MAX_DEPTH:
        raise _TooMany
    changed = False
    try:
        entries = list(os.scandir(layer.upper + inside))
    except FileNotFoundError:
        if not inside:
            raise
        return False  # a folder the running service removed meanwhile
    for entry in entries:
        seen[0] += 1
        if seen[0] > limit:
            raise _TooMany
        try:
            info = entry.stat(follow_symlinks=False)
        except FileNotFoundError:
            continue  # removed by the running service meanwhile
        if stat.S_ISCHR(info.st_mode) and info.st_rdev == 0:
            changed = True  # a whiteout: deleted, which makes its folder changed
            continue
        name = f"{inside}/{entry.name}"
        if not stat.S_ISDIR(info.st_mode):
            found.append(name)
            changed = True
            continue
        below = _walk(layer, name, found, seen, limit, depth + 1)
        if below or _new_folder(layer, name, info):
            found.append(name)
            changed = True
    return changed


def _new_folder(layer: Layer, name: str, info: os.stat_result) -> bool:
    """A folder that is not the image's own: absent from it, another kind, owner or mode."""
    for lower in layer.lowers:
        try:
            old = os.stat(lower + name, follow_symlinks=False)
        except FileNotFoundError:
            continue
        return (old.st_mode, old.st_uid, old.st_gid) != (info.st_mode, info.st_uid, info.st_gid)
    return True

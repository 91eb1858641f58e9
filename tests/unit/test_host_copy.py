"""host_copy: which files on a container's mounts may be read from the host, and how.

The copy against the engine's own, on a real container: tests/e2e/test_host_copy.py.
"""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path
from typing import Any

import pytest

from persistaudit import host_copy


def attrs(*mounts: dict[str, Any], requested: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"Mounts": list(mounts), "HostConfig": {"Mounts": requested or []}}


VOLUME = {"Type": "volume", "Driver": "local", "Source": "/v/_data", "Destination": "/data"}


def test_the_deepest_mount_holding_the_path_is_used() -> None:
    inner = {"Type": "bind", "Source": "/host/cache", "Destination": "/data/cache"}
    doc = attrs(VOLUME, inner)
    assert host_copy.host_source(doc, "/data/app.db") == ("/v/_data", ["app.db"])
    assert host_copy.host_source(doc, "/data/cache/c.db") == ("/host/cache", ["c.db"])
    assert host_copy.host_source(doc, "/data/a/b.db") == ("/v/_data", ["a", "b.db"])


def test_mounts_the_host_cannot_read_the_same_way_are_the_engines() -> None:
    assert host_copy.host_source(attrs(VOLUME), "/srv/app.db") is None  # in the layer
    assert host_copy.host_source(attrs(VOLUME), "/data") is None  # the mount itself
    assert host_copy.host_source(attrs(VOLUME), "/data/../etc/passwd") is None
    plugin = {**VOLUME, "Driver": "rexray"}
    assert host_copy.host_source(attrs(plugin), "/data/app.db") is None
    tmpfs = {"Type": "tmpfs", "Source": "", "Destination": "/data"}
    assert host_copy.host_source(attrs(tmpfs), "/data/app.db") is None
    relative = {**VOLUME, "Source": "v/_data"}
    assert host_copy.host_source(attrs(relative), "/data/app.db") is None
    hidden = {**attrs(VOLUME), "HostConfig": {"Tmpfs": {"/data/cache": ""}}}
    assert host_copy.host_source(hidden, "/data/cache/c.db") is None  # a tmpfs over the volume
    assert host_copy.host_source(hidden, "/data/app.db") == ("/v/_data", ["app.db"])
    subpath = [{"Type": "volume", "Target": "/data", "VolumeOptions": {"Subpath": "app"}}]
    assert host_copy.host_source(attrs(VOLUME, requested=subpath), "/data/app.db") is None


def test_an_engine_that_maps_user_ids_is_not_read_around() -> None:
    assert host_copy.maps_ids(["name=seccomp,profile=builtin", "name=userns"])
    assert host_copy.maps_ids(["name=rootless"])
    assert not host_copy.maps_ids(["name=seccomp,profile=builtin", "name=cgroupns"])


def test_only_a_regular_file_reached_without_links_is_opened(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "a.db").write_bytes(b"abc")
    (tmp_path / "link").symlink_to(tmp_path / "sub")
    (tmp_path / "file-link.db").symlink_to(tmp_path / "sub" / "a.db")
    os.mkfifo(tmp_path / "fifo.db")
    opened = host_copy.open_file(str(tmp_path), ["sub", "a.db"])
    assert opened is not None
    os.close(opened[0])
    assert host_copy.open_file(str(tmp_path), ["link", "a.db"]) is None
    assert host_copy.open_file(str(tmp_path), ["file-link.db"]) is None
    assert host_copy.open_file(str(tmp_path), ["fifo.db"]) is None  # and no hang
    assert host_copy.open_file(str(tmp_path), ["sub"]) is None
    assert host_copy.open_file(str(tmp_path), ["absent.db"]) is None
    assert host_copy.open_file(str(tmp_path / "absent"), ["a.db"]) is None


def test_the_stream_is_the_file_as_one_tar_member(tmp_path: Path) -> None:
    data = os.urandom(3 * host_copy.CHUNK + 17)
    (tmp_path / "a.db").write_bytes(data)
    (tmp_path / "a.db").chmod(0o640)
    opened = host_copy.open_file(str(tmp_path), ["a.db"])
    assert opened is not None
    raw = b"".join(host_copy.tar_stream(*opened, "a.db"))
    assert len(raw) % tarfile.BLOCKSIZE == 0
    with tarfile.open(fileobj=io.BytesIO(raw)) as archive:
        (member,) = archive.getmembers()
        assert (member.name, member.size, member.mode) == ("a.db", len(data), 0o640)
        extracted = archive.extractfile(member)
        assert extracted is not None
        assert extracted.read() == data


def test_a_file_that_shrinks_meanwhile_ends_the_stream_short(tmp_path: Path) -> None:
    (tmp_path / "a.db").write_bytes(b"x" * 5000)
    opened = host_copy.open_file(str(tmp_path), ["a.db"])
    assert opened is not None
    os.truncate(tmp_path / "a.db", 100)
    raw = b"".join(host_copy.tar_stream(*opened, "a.db"))
    assert len(raw) == tarfile.BLOCKSIZE + 100  # the header and what was there: cut off


@pytest.mark.parametrize("kernel", [True, False])
def test_copy_to_copies_the_bytes_with_or_without_the_kernels_call(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kernel: bool
) -> None:
    data = os.urandom(3 * 1024 * 1024 + 17)
    (tmp_path / "a.db").write_bytes(data)
    monkeypatch.setattr(host_copy, "KERNEL_CHUNK", 1024 * 1024)  # several calls
    if not kernel:
        monkeypatch.delattr(os, "copy_file_range", raising=False)
    opened = host_copy.open_file(str(tmp_path), ["a.db"])
    assert opened is not None
    (tmp_path / "copy").write_bytes(b"old and longer " * 400_000)  # truncated first
    assert host_copy.copy_to(*opened, tmp_path / "copy") == len(data)
    assert (tmp_path / "copy").read_bytes() == data


def test_copy_to_falls_back_when_the_kernel_refuses(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = os.urandom(200_000)
    (tmp_path / "a.db").write_bytes(data)

    def refused(*args: object) -> int:
        raise OSError(18, "Invalid cross-device link")

    monkeypatch.setattr(os, "copy_file_range", refused)
    opened = host_copy.open_file(str(tmp_path), ["a.db"])
    assert opened is not None
    assert host_copy.copy_to(*opened, tmp_path / "copy") == len(data)
    assert (tmp_path / "copy").read_bytes() == data


def test_copy_to_reports_a_file_that_shrank_meanwhile(tmp_path: Path) -> None:
    (tmp_path / "a.db").write_bytes(b"x" * 5000)
    opened = host_copy.open_file(str(tmp_path), ["a.db"])
    assert opened is not None
    os.truncate(tmp_path / "a.db", 100)
    assert host_copy.copy_to(*opened, tmp_path / "copy") == 100  # the snapshot says cut off

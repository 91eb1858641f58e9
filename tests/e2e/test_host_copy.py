"""A file on a volume read from the host (host_copy) is the copy the engine's archive gives."""

from __future__ import annotations

import io
import os
import tarfile
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest
from docker.models.containers import Container

from persistaudit.exceptions import DatabaseTooLarge
from persistaudit.runtime.base import DockerContainer
from persistaudit.snapshot import Budget, copy_member, take_snapshot
from tests.e2e.conftest import sleeping_container

pytestmark = pytest.mark.docker

SETUP = (
    "head -c 300000 /dev/urandom > /data/app.db && chown 1234:2345 /data/app.db"
    " && chmod 640 /data/app.db && mkdir -p /data/sub && echo x > /data/sub/inner.db"
    " && ln -s /etc/passwd /data/link.db && mkfifo /data/fifo.db"
    " && ln -s /data/sub /data/linked && echo y > /bound/on-bind.db"
)


@pytest.fixture
def container(engine: docker.DockerClient, tmp_path: Path) -> Iterator[Container]:
    bound = tmp_path / "bound"
    bound.mkdir()
    with sleeping_container(engine, "pa-hostcopy", SETUP, {str(bound): "/bound"}) as made:
        yield made


def copy(handle: DockerContainer, path: str, dest: Path) -> tuple[bytes, object, str]:
    """The copy's bytes and owner, or the error the snapshot reports."""
    stream = handle.get_archive(path)
    if stream is None:
        return b"", None, "missing"
    owners: dict[str, object] = {}
    try:
        copy_member(stream, path, dest, Budget(dest.parent, 10**9), owners)  # type: ignore[arg-type]
    except Exception as exc:
        return b"", None, type(exc).__name__ + ": " + str(exc)
    return dest.read_bytes(), owners[dest.name], ""


@pytest.mark.parametrize(
    "path",
    [
        "/data/app.db",
        "/data/sub/inner.db",
        "/bound/on-bind.db",
        "/data/link.db",
        "/data/fifo.db",
        "/data/linked/inner.db",
        "/data/absent.db",
    ],
)
def test_the_host_copy_is_the_engines(
    container: Container, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, path: str
) -> None:
    handle = DockerContainer(container)
    if handle._host_attrs() is None:
        pytest.skip("the engine is not local here, or maps user ids")
    hosted = handle._from_host(path)
    # Regular files on the mounts come from the host; links, fifos and missing files from
    # the engine (which resolves a link inside the container).
    assert (hosted is not None) == (
        path in ("/data/app.db", "/data/sub/inner.db", "/bound/on-bind.db")
    )
    if hosted is not None:
        list(hosted)  # the stream closes its file
    from_host = copy(handle, path, tmp_path / "host")
    monkeypatch.setenv("PERSISTAUDIT_COPY_FROM_ENGINE", "1")
    from_engine = copy(handle, path, tmp_path / "engine")
    assert from_host == from_engine
    if path == "/data/app.db":
        assert len(from_host[0]) == 300_000
        assert from_host[1] == from_engine[1]
        owner = from_host[1]
        assert (owner.uid, owner.gid, owner.mode) == (1234, 2345, 0o640)  # type: ignore[attr-defined]


def test_the_stream_is_one_member_tar(container: Container) -> None:
    handle = DockerContainer(container)
    hosted = handle._from_host("/data/sub/inner.db")
    if hosted is None:
        pytest.skip("the engine is not local here, or maps user ids")
    with tarfile.open(fileobj=io.BytesIO(b"".join(hosted))) as archive:
        members = archive.getmembers()
        assert [m.name for m in members] == ["inner.db"]
        extracted = archive.extractfile(members[0])
        assert extracted is not None
        assert extracted.read() == b"x\n"


def test_a_snapshot_copied_in_the_kernel_is_the_engines_copy(
    container: Container, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Bytes, owner and fingerprint (hashed after the pause) are those of the engine's route."""
    handle = DockerContainer(container)
    if handle._host_attrs() is None:
        pytest.skip("the engine is not local here, or maps user ids")
    opened = handle.host_file("/data/app.db")
    assert opened is not None  # the kernel's route is the one taken
    os.close(opened[0])
    kernel = take_snapshot(handle, "/data/app.db", tmp_path / "kernel", max_size=10**9)
    monkeypatch.setenv("PERSISTAUDIT_COPY_FROM_ENGINE", "1")
    engine = take_snapshot(handle, "/data/app.db", tmp_path / "engine", max_size=10**9)
    assert kernel.path.read_bytes() == engine.path.read_bytes()
    assert len(kernel.path.read_bytes()) == 300_000
    assert kernel.owner == engine.owner
    assert kernel.files == engine.files
    assert kernel.sha256 == engine.sha256
    assert kernel.fingerprint == engine.fingerprint != ""


def test_a_copy_over_the_budget_is_refused_on_the_kernels_route_too(
    container: Container, tmp_path: Path
) -> None:
    handle = DockerContainer(container)
    if handle._host_attrs() is None:
        pytest.skip("the engine is not local here, or maps user ids")
    with pytest.raises(DatabaseTooLarge):
        take_snapshot(handle, "/data/app.db", tmp_path / "small", max_size=1000)
    assert not list((tmp_path / "small").iterdir())

"""The image and compose drivers on a real engine: their handles keep the protocol, stop and
kill work, a compose re-create keeps the volume.

The contract is tests/unit/test_protocol_compliance.py's, run here against the DockerContainer
that ImageRuntime started from the notes-app config, and the one ComposeRuntime started from a
compose file of notes-app (once each for the module: a start costs seconds).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import docker
import pytest
import yaml

from persistaudit import engine as engine_module
from persistaudit.cleanup import list_resources
from persistaudit.config import load_config
from persistaudit.engine import LABEL_RUN
from persistaudit.runtime import ComposeRuntime, DockerContainer, ImageRuntime, runtime_for
from persistaudit.runtime.attached_exec import MAX_OUTPUT
from tests.helpers import NOTES_APP, REPO
from tests.unit.test_protocol_compliance import ContainerHandleContract, Target

pytestmark = pytest.mark.docker


def _notes_app(engine: docker.DockerClient) -> ImageRuntime:
    config = load_config(NOTES_APP / "audit.yaml")
    runtime = runtime_for(config, engine, engine_module.new_run_id())
    assert isinstance(runtime, ImageRuntime)
    return runtime


def _layer_writer(handle: DockerContainer) -> Callable[[str], None]:
    """Writes an empty file at a path in the container (outside its volume: its layer)."""

    def write(path: str) -> None:
        script = (
            "import os, sys; os.makedirs(os.path.dirname(sys.argv[1]), exist_ok=True); "
            "open(sys.argv[1], 'w')"
        )
        code, output = handle.exec(["python3", "-c", script, path])
        assert code == 0, output

    return write


@pytest.fixture(scope="module")
def notes_app_container(engine: docker.DockerClient) -> Iterator[Target]:
    runtime = _notes_app(engine)
    try:
        runtime.start()
        assert isinstance(runtime.container, DockerContainer)
        config = runtime.config
        handle = runtime.container
        database = config.declared_databases[0].path
        yield Target(handle, database, config.volume_mount, 8080, _layer_writer(handle))
    finally:
        removal = runtime.close()
    assert not removal.left


class TestDockerContainer(ContainerHandleContract):
    @pytest.fixture
    def target(self, notes_app_container: Target) -> Target:
        return notes_app_container


def test_kill_then_restart_then_stop(engine: docker.DockerClient) -> None:
    """kill is a crash (SIGKILL, exit 137); the volume survives it; stop is graceful."""
    runtime = _notes_app(engine)
    try:
        runtime.start()
        runtime.kill()
        state = runtime.container.state()
        assert state.status == "exited"
        assert state.exit_code == 137
        runtime.restart()
        assert runtime.container.state().status == "running"
        started = time.monotonic()
        runtime.stop(timeout=20)
        state = runtime.container.state()
        assert state.status == "exited"
        assert state.exit_code == 0  # notes-app ends on SIGTERM: not killed at the timeout
        assert time.monotonic() - started < 20
        assert any("signal 15" in line for line in runtime.container.logs())
    finally:
        removal = runtime.close()
    assert not removal.left


def test_kill_sends_the_signal_asked_for(engine: docker.DockerClient) -> None:
    runtime = _notes_app(engine)
    try:
        runtime.start()
        runtime.kill("SIGTERM")
        deadline = time.monotonic() + 10
        while runtime.container.state().status != "exited" and time.monotonic() < deadline:
            time.sleep(0.1)
        assert runtime.container.state().exit_code == 0  # its SIGTERM handler ran
        assert any("signal 15" in line for line in runtime.container.logs())
    finally:
        runtime.close()


def _compose_notes_app(engine: docker.DockerClient, folder: Path) -> ComposeRuntime:
    """notes-app from a compose file with one named volume at /data (the contract's mount)."""
    service = {
        "build": {"context": str(NOTES_APP)},
        "environment": {"NOTES_DB_PATH": "/data/notes.db"},
        "ports": ["8080:8080"],  # published on an ephemeral loopback port instead
        "volumes": ["notes-data:/data"],
    }
    compose = {"services": {"notes": service}, "volumes": {"notes-data": {}}}
    (folder / "compose.yaml").write_text(yaml.safe_dump(compose))
    config = yaml.safe_load((REPO / "fixtures/targets/notes-app-compose/audit.yaml").read_text())
    config["expect"]["manifest"] = str(REPO / "expected" / "notes-app.yaml")
    (folder / "audit.yaml").write_text(yaml.safe_dump(config))
    runtime = runtime_for(load_config(folder / "audit.yaml"), engine, engine_module.new_run_id())
    assert isinstance(runtime, ComposeRuntime)
    return runtime


@pytest.fixture(scope="module")
def compose_container(
    engine: docker.DockerClient, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Target]:
    runtime = _compose_notes_app(engine, tmp_path_factory.mktemp("compose"))
    try:
        runtime.start()
        assert isinstance(runtime.container, DockerContainer)
        handle = runtime.container
        database = runtime.config.declared_databases[0].path
        yield Target(handle, database, "/data", 8080, _layer_writer(handle))
    finally:
        removal = runtime.close()
    assert not removal.left


class TestComposeContainer(ContainerHandleContract):
    @pytest.fixture
    def target(self, compose_container: Target) -> Target:
        return compose_container


def test_compose_recreate_keeps_the_volume_and_close_removes_everything(
    engine: docker.DockerClient, tmp_path: Path
) -> None:
    runtime = _compose_notes_app(engine, tmp_path)
    try:
        runtime.start()
        first = runtime.container.id
        assert runtime.container.exec(["sh", "-c", "echo kept > /data/marker"])[0] == 0
        runtime.restart()
        assert runtime.container.id == first  # compose restart: the same container
        runtime.recreate()
        assert runtime.container.id != first  # compose down + up: a new one ...
        assert runtime.container.exec(["cat", "/data/marker"]) == (0, "kept\n")  # same volume
        runtime.kill()
        assert runtime.container.state().exit_code == 137
        scratch = runtime.scratch
        assert scratch is not None
        assert scratch.is_dir()
    finally:
        removal = runtime.close()
    assert not removal.left
    assert not scratch.exists()
    # By its run label: the module's other runtimes belong to this process too.
    assert list_resources(engine, label=f"{LABEL_RUN}={runtime.run_id}") == []
    assert list_resources(engine, prefix=runtime.project) == []


def test_attached_exec_ends_at_its_deadline_whatever_the_command_does(
    notes_app_container: Target,
) -> None:
    """A command that never reads its standard input and never ends, or that talks and then
    hangs, cannot hold the caller: 124 at the deadline, with what it said so far."""
    handle = notes_app_container.handle
    started = time.monotonic()
    code, output = handle.exec(["sleep", "60"], timeout=2, stdin=b"x" * (4 * 1024 * 1024))
    assert (code, output) == (124, "still running after 2 s")
    assert time.monotonic() - started < 4
    started = time.monotonic()
    code, output = handle.exec(["sh", "-c", "echo started; sleep 60"], timeout=2)
    assert (code, output) == (124, "still running after 2 s; its output so far:\nstarted\n")
    assert time.monotonic() - started < 4


def test_attached_exec_keeps_a_bounded_part_of_a_large_output(
    notes_app_container: Target,
) -> None:
    handle = notes_app_container.handle
    code, output = handle.exec(["cat"], timeout=30, stdin=b"y" * (3 * 1024 * 1024))
    assert code == 0
    assert output.startswith("y" * MAX_OUTPUT)
    assert output[MAX_OUTPUT:] == f"\n[{2 * 1024 * 1024:,} more bytes of output not kept]"
    code, output = handle.exec(["sh", "-c", "echo out; echo err >&2; exit 3"], timeout=10)
    # Both streams are kept; their order is the engine's, which interleaves them as it reads.
    assert (code, sorted(output.splitlines())) == (3, ["err", "out"])


def test_exec_without_a_deadline_still_keeps_a_bounded_output(
    notes_app_container: Target,
) -> None:
    """A caller that gives no timeout gets EXEC_TIMEOUT and the same output bound: a chatty
    command in an untrusted target cannot fill persistaudit's memory."""
    handle = notes_app_container.handle
    script = "import sys; sys.stdout.write('z' * (3 * 1024 * 1024))"
    code, output = handle.exec(["python3", "-c", script])
    assert code == 0
    assert output.startswith("z" * MAX_OUTPUT)
    assert output[MAX_OUTPUT:] == f"\n[{2 * 1024 * 1024:,} more bytes of output not kept]"

"""The image driver on a real engine: its handle keeps the protocol, stop and kill work.

The contract is tests/unit/test_protocol_compliance.py's, run here against a DockerContainer
that ImageRuntime started from the notes-app config (once for the module: a start costs
seconds).
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import docker
import pytest

from persistaudit import engine as engine_module
from persistaudit.config import load_config
from persistaudit.runtime import DockerContainer, ImageRuntime, runtime_for
from persistaudit.runtime.attached_exec import MAX_OUTPUT
from tests.helpers import NOTES_APP
from tests.unit.test_protocol_compliance import ContainerHandleContract, Target

pytestmark = pytest.mark.docker


def _notes_app(engine: docker.DockerClient) -> ImageRuntime:
    config = load_config(NOTES_APP / "audit.yaml")
    runtime = runtime_for(config, engine, engine_module.new_run_id())
    assert isinstance(runtime, ImageRuntime)
    return runtime


@pytest.fixture(scope="module")
def notes_app_container(engine: docker.DockerClient) -> Iterator[Target]:
    runtime = _notes_app(engine)
    try:
        runtime.start()
        assert isinstance(runtime.container, DockerContainer)
        config = runtime.config
        yield Target(runtime.container, config.database.path, config.volume.mount, 8080)
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
    assert (code, output) == (3, "out\nerr\n")

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
        handle = runtime.container

        def write(path: str) -> None:
            script = (
                "import os, sys; os.makedirs(os.path.dirname(sys.argv[1]), exist_ok=True); "
                "open(sys.argv[1], 'w')"
            )
            code, output = handle.exec(["python3", "-c", script, path])
            assert code == 0, output

        database = config.declared_databases[0].path
        yield Target(handle, database, config.volume.mount, 8080, write)
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

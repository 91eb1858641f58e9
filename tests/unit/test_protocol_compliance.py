"""Every container handle and runtime keeps to the protocol the audit is written against.

ContainerHandleContract holds the checks; each driver's handle runs them: FakeHandle here,
DockerContainer (on a real notes-app container) in tests/e2e/test_runtime_protocol.py. A new
driver subclasses the contract with a `handle` fixture of its own (testcontainers-python's
test_protocol_compliance does the same for its wait-strategy target).
"""

from __future__ import annotations

import dataclasses
import inspect
import io
import json
import sqlite3
import tarfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from persistaudit.config import load_config
from persistaudit.readiness import ContainerState
from persistaudit.runtime import (
    DRIVERS,
    ComposeRuntime,
    ContainerHandle,
    DockerContainer,
    ImageRuntime,
    Mount,
    Runtime,
    TargetInfo,
    runtime_for,
)
from tests.helpers import NOTES_APP, REPO
from tests.unit.fakes import FakeHandle, FakeRuntime

KNOWN_STATUSES = {"created", "running", "paused", "restarting", "removing", "exited", "dead"}
# The protocol's members, as the audit uses them.
HANDLE_METHODS = [
    "state",
    "logs",
    "exec",
    "url",
    "mounts",
    "paused",
    "get_archive",
    "changed_files",
]
RUNTIME_METHODS = ["start", "restart", "recreate", "stop", "kill", "describe", "missing", "close"]


@dataclasses.dataclass
class Target:
    """A started handle and what the contract needs to know about its container."""

    handle: Any
    database: str  # the path of a database file in the container
    mount: str  # where the volume is mounted
    port: int  # a published port
    # Writes a file at an absolute path in the container's layer (outside the volume).
    write_in_layer: Callable[[str], None]


def _parameters(function: Any) -> list[tuple[str, Any]]:
    return [
        (p.name, p.default)
        for p in inspect.signature(function).parameters.values()
        if p.name != "self"
    ]


class ContainerHandleContract:
    """The checks every ContainerHandle passes; subclasses provide the `target` fixture."""

    def test_is_a_container_handle(self, target: Target) -> None:
        assert isinstance(target.handle, ContainerHandle)
        assert isinstance(target.handle.name, str)
        assert target.handle.name
        assert isinstance(target.handle.id, str)
        assert target.handle.id

    @pytest.mark.parametrize("method", HANDLE_METHODS)
    def test_methods_take_the_protocols_arguments(self, target: Target, method: str) -> None:
        expected = _parameters(getattr(ContainerHandle, method))
        assert _parameters(getattr(target.handle, method)) == expected

    def test_state_is_a_known_status(self, target: Target) -> None:
        state = target.handle.state()
        assert state.status == "running"
        assert state.status in KNOWN_STATUSES
        assert isinstance(state.exit_code, int)
        assert isinstance(state.restart_count, int)
        assert isinstance(state.error, str)

    def test_logs_are_lines(self, target: Target) -> None:
        lines = target.handle.logs()
        assert isinstance(lines, list)
        assert lines
        assert all(isinstance(line, str) and "\n" not in line for line in lines)
        assert len(target.handle.logs(tail=1)) == 1
        assert isinstance(target.handle.logs(current_run=True), list)

    def test_exec_returns_exit_code_and_output(self, target: Target) -> None:
        code, output = target.handle.exec(["/no/such/persistaudit-command"])
        assert isinstance(code, int)
        assert code != 0
        assert isinstance(output, str)
        code, output = target.handle.exec(["/no/such/persistaudit-command"], timeout=5)
        assert isinstance(code, int)
        assert code != 0
        assert isinstance(output, str)

    def test_exec_sends_stdin_then_closes_it(self, target: Target) -> None:
        """`cat` ends only when its standard input is closed: no hang means it was."""
        assert target.handle.exec(["cat"], timeout=10, stdin=b"one\ntwo\n") == (0, "one\ntwo\n")
        assert target.handle.exec(["cat"], timeout=10, stdin=b"") == (0, "")

    def test_url_of_a_published_port_and_of_another(self, target: Target) -> None:
        url = target.handle.url(target.port, "/health")
        assert url.startswith("http://")
        assert url.endswith("/health")
        with pytest.raises(LookupError):
            target.handle.url(65000, "/health")

    def test_mounts_name_the_volume(self, target: Target) -> None:
        mounts = target.handle.mounts()
        assert isinstance(mounts, list)
        assert all(isinstance(m, Mount) for m in mounts)
        assert [m.destination for m in mounts if m.rw] == [target.mount]

    def test_paused_pauses_and_resumes(self, target: Target) -> None:
        with target.handle.paused():
            assert target.handle.state().status == "paused"
        # Running as soon as paused() returns: a second pause right after must really pause.
        assert target.handle.state().status == "running"
        with target.handle.paused():
            assert target.handle.state().status == "paused"
        assert target.handle.state().status == "running"

    def test_paused_resumes_after_an_error(self, target: Target) -> None:
        with pytest.raises(KeyError), target.handle.paused():
            raise KeyError("a copy failed")
        assert target.handle.state().status == "running"

    def test_get_archive_of_a_missing_path_is_none(self, target: Target) -> None:
        assert target.handle.get_archive(target.mount + "/no-such-file.db") is None

    def test_get_archive_streams_one_file_as_tar(self, target: Target) -> None:
        stream = target.handle.get_archive(target.database)
        assert stream is not None
        chunks = list(stream)
        assert chunks
        assert all(isinstance(c, bytes) for c in chunks)
        with tarfile.open(fileobj=io.BytesIO(b"".join(chunks))) as tar:
            members = tar.getmembers()
            assert [m.name for m in members] == [target.database.rsplit("/", 1)[1]]
            data = tar.extractfile(members[0])
            assert data is not None
            assert data.read(16) == b"SQLite format 3\x00"

    def test_changed_files_lists_the_layer_not_the_volume(self, target: Target) -> None:
        target.write_in_layer("/srv/persistaudit-probe/written.db")
        changed = target.handle.changed_files()
        assert isinstance(changed, list)
        assert all(isinstance(p, str) for p in changed)
        assert changed == sorted(changed)
        assert "/srv/persistaudit-probe/written.db" in changed
        assert target.database not in changed  # on the volume: not the container's layer
        assert not any(p.startswith(target.mount + "/") for p in changed)


class TestFakeHandle(ContainerHandleContract):
    @pytest.fixture
    def target(self, config_dir: Path, tmp_path: Path) -> Iterator[Target]:
        config = load_config(config_dir / "audit.yaml")
        runtime = FakeRuntime(config, tmp_path / "volume")
        runtime.start()
        handle = runtime.container
        handle.programs["cat"] = lambda _argv, stdin: (0, (stdin or b"").decode())

        def write(path: str) -> None:
            handle.layer[path] = b"written"

        database = config.declared_databases[0].path
        yield Target(handle, database, config.volume_mount, 8080, write)
        runtime.close()

    def test_scripted_states_come_in_order_and_the_last_stays(self, tmp_path: Path) -> None:
        handle = FakeHandle("x", tmp_path, "/data")
        handle.states = [ContainerState("restarting", 1, 1, ""), ContainerState("exited", 1, 2, "")]
        assert [handle.state().status for _ in range(3)] == ["restarting", "exited", "exited"]

    def test_get_archive_outside_the_volume_is_none(self, tmp_path: Path) -> None:
        (tmp_path / "app.db").write_bytes(b"x")
        handle = FakeHandle("x", tmp_path, "/data")
        assert handle.get_archive("/data/app.db") is not None
        assert handle.get_archive("/etc/app.db") is None


@pytest.mark.parametrize(
    "runtime_class", [ImageRuntime, ComposeRuntime, FakeRuntime], ids=lambda c: c.NAME
)
def test_runtimes_implement_the_whole_base(runtime_class: type[Runtime]) -> None:
    assert issubclass(runtime_class, Runtime)
    assert not inspect.isabstract(runtime_class)
    for method in RUNTIME_METHODS:
        expected = [name for name, _ in _parameters(getattr(Runtime, method))]
        assert [name for name, _ in _parameters(getattr(runtime_class, method))] == expected


@pytest.mark.parametrize("runtime_class", [ImageRuntime, ComposeRuntime], ids=lambda c: c.NAME)
def test_the_docker_drivers_handle_is_a_container_handle(runtime_class: type[Runtime]) -> None:
    assert inspect.signature(runtime_class.container.fget).return_annotation in (  # type: ignore[attr-defined]
        "DockerContainer",
        DockerContainer,
    )
    for method in HANDLE_METHODS:
        assert callable(getattr(DockerContainer, method))
    for attribute in ("name", "id"):
        assert isinstance(inspect.getattr_static(DockerContainer, attribute), property)


def test_drivers_are_keyed_by_their_name() -> None:
    assert set(DRIVERS) == {"image", "compose"}
    for name, driver in DRIVERS.items():
        assert isinstance(driver, type)
        assert issubclass(driver, Runtime)
        assert name == driver.NAME


@pytest.mark.parametrize("source", ["image", "build"])
def test_runtime_for_picks_the_image_driver_for_an_image_or_a_build(
    config_dir: Path, source: str
) -> None:
    path = NOTES_APP / "audit.yaml" if source == "build" else config_dir / "audit.yaml"
    config = load_config(path)
    assert (config.build is not None) == (source == "build")
    runtime = runtime_for(config, None, "run1")  # type: ignore[arg-type]  # not started
    assert type(runtime) is ImageRuntime
    assert runtime.config is config
    assert runtime.run_id == "run1"


def test_runtime_for_picks_the_compose_driver_for_a_compose_service() -> None:
    config = load_config(REPO / "fixtures" / "targets" / "notes-app-compose" / "audit.yaml")
    runtime = runtime_for(config, None, "run1")  # type: ignore[arg-type]  # not started
    assert type(runtime) is ComposeRuntime
    assert runtime.project == "persistaudit-notes-app-compose-run1"  # unique per run


def test_target_info_is_the_results_target_section(config_dir: Path, tmp_path: Path) -> None:
    """asdict(TargetInfo) gives results.json's target keys, in the order the golden files have."""
    golden = json.loads((REPO / "tests/golden/pass.results.json").read_text())["target"]
    runtime = FakeRuntime(load_config(config_dir / "audit.yaml"), tmp_path / "volume")
    try:
        info = runtime.describe()
        assert isinstance(info, TargetInfo)
        with pytest.raises(dataclasses.FrozenInstanceError):
            info.name = "other"  # type: ignore[misc]
        # The collector writes the runtime's databases (paths) as "database" (joined, as results
        # before several databases had it) and adds the config's declarations as "databases".
        keys = ["database" if k == "databases" else k for k in dataclasses.asdict(info)]
        added_by_the_collector = ["config", "env", "expect"]
        assert keys + added_by_the_collector == list(golden)
    finally:
        runtime.close()


def test_fake_stop_and_kill_end_the_service(config_dir: Path, tmp_path: Path) -> None:
    runtime = FakeRuntime(load_config(config_dir / "audit.yaml"), tmp_path / "volume")
    try:
        runtime.start()
        runtime.kill()
        assert (runtime.container.state().status, runtime.container.state().exit_code) == (
            "exited",
            137,
        )
        with pytest.raises(LookupError):
            runtime.container.url(8080, "/")
        runtime.restart()
        runtime.stop(timeout=1)
        assert runtime.container.state() == runtime.container.state()
        assert runtime.container.state().exit_code == 0
        assert runtime.calls == ["start", "kill SIGKILL", "restart", "stop"]
        with sqlite3.connect(tmp_path / "volume" / "app.db") as conn:  # the volume is kept
            assert conn.execute("SELECT count(*) FROM items").fetchone() == (0,)
        conn.close()
    finally:
        runtime.close()

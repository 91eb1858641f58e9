"""readiness.healthcheck on real containers: the engine's health status, through every cycle."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import docker
import docker.errors
import pytest

from persistaudit.readiness import HealthWait, wait_ready
from persistaudit.runtime.base import DockerContainer
from tests.e2e.conftest import Audit, config_variant, persistaudit
from tests.helpers import NOTES_APP

pytestmark = pytest.mark.docker


@pytest.fixture
def tags(engine: docker.DockerClient) -> Iterator[Callable[[], str]]:
    """Unique image tags for this test's builds, removed at the end (never a shared tag)."""
    made: list[str] = []

    def new() -> str:
        made.append(f"persistaudit-test/notes-health:{uuid.uuid4().hex[:12]}")
        return made[-1]

    yield new
    for tag in made:
        with contextlib.suppress(docker.errors.DockerException):
            engine.images.remove(tag)


def health_config(
    tmp_path: Path,
    name: str,
    tag: str,
    port: int = 8080,
    dockerfile: str = "Dockerfile.healthcheck",
) -> Path:
    return config_variant(
        tmp_path,
        NOTES_APP / "audit.yaml",
        name,
        build={
            "context": str(NOTES_APP),
            "dockerfile": dockerfile,
            "tag": tag,
            "args": {"DEFECT": "none", "HEALTH_PORT": str(port)},
        },
        readiness={"healthcheck": True, "timeout": 10, "interval": 0.2},
    )


def test_a_healthy_healthcheck_passes_through_restart_and_recreate(
    run_audit: Callable[..., Audit], tmp_path: Path, tags: Callable[[], str]
) -> None:
    audit = run_audit(health_config(tmp_path, "healthy", tags()), "-k", "startup or retention")
    assert audit.code == 0, audit.stderr
    ran = {k: v for k, v in audit.statuses().items() if v != "skipped"}
    assert ran == {
        "fresh_install.startup": "passed",
        "restart.retention": "passed",
        "recreate.retention": "passed",
    }


def test_a_restart_waits_for_healthy_again(
    engine: docker.DockerClient, tmp_path: Path, tags: Callable[[], str]
) -> None:
    """The engine resets the status to starting on each start: the last run's healthy is gone."""
    tag = tags()
    engine.images.build(path=str(NOTES_APP), dockerfile="Dockerfile.healthcheck", tag=tag, rm=True)
    raw = engine.containers.run(tag, detach=True, labels={"io.persistaudit.test": "health"})
    try:
        container = DockerContainer(raw)
        wait_ready(container, HealthWait(), timeout=20, interval=0.1)
        assert container.state().health == "healthy"
        engine.api.restart(raw.id, timeout=5)
        after = container.state()
        assert after.status == "running"
        assert after.health == "starting"
        assert not HealthWait().ready(container)
        wait_ready(container, HealthWait(), timeout=20, interval=0.1)
    finally:
        raw.remove(force=True, v=True)


def test_a_healthcheck_that_never_passes_is_blocked_with_its_log(
    run_audit: Callable[..., Audit], tmp_path: Path, tags: Callable[[], str]
) -> None:
    audit = run_audit(health_config(tmp_path, "unhealthy", tags(), port=8081), "-k", "startup")
    assert audit.code == 3, audit.stderr
    startup = audit.check("fresh_install.startup")
    assert startup["status"] == "blocked"
    assert (
        "not ready after 10 s (waiting for healthcheck reports healthy; status running, health "
        in startup["summary"]
    )
    probes = next(e for e in startup["evidence"] if "State.Health.Log" in e["title"])
    assert "exit 1: " in probes["content"]
    assert "Connection refused" in probes["content"]
    state = next(e for e in startup["evidence"] if e["title"] == "Container state")
    assert "health: unhealthy" in state["content"]


def test_healthcheck_readiness_on_an_image_without_one_is_exit_2(
    engine: docker.DockerClient, tmp_path: Path, tags: Callable[[], str]
) -> None:
    config = health_config(tmp_path, "none", tags(), dockerfile="Dockerfile")
    proc = persistaudit("run", str(config), "--out", str(tmp_path / "out"))
    assert proc.returncode == 2, proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("persistaudit: error: ")
    assert "readiness.healthcheck: image persistaudit-test/notes-health:" in last
    assert "defines no HEALTHCHECK" in last
    assert "Traceback" not in proc.stderr


def override_config(tmp_path: Path, name: str, tag: str, port: int, timeout: float) -> Path:
    """notes-app's plain image (no HEALTHCHECK) with a healthcheck given in the config."""
    probe = f"import urllib.request as u; u.urlopen('http://127.0.0.1:{port}/health', timeout=1)"
    return config_variant(
        tmp_path,
        NOTES_APP / "audit.yaml",
        name,
        build={"context": str(NOTES_APP), "tag": tag, "args": {"DEFECT": "none"}},
        readiness={
            "healthcheck": {"test": ["CMD", "python3", "-c", probe], "interval": 0.5, "retries": 1},
            "timeout": timeout,
            "interval": 0.2,
        },
    )


def test_a_healthcheck_given_in_the_config_readies_an_image_without_one(
    run_audit: Callable[..., Audit], tmp_path: Path, tags: Callable[[], str]
) -> None:
    audit = run_audit(override_config(tmp_path, "given", tags(), 8080, 20), "-k", "startup")
    assert audit.code == 0, audit.stderr
    assert audit.check("fresh_install.startup")["status"] == "passed"


def test_a_failing_healthcheck_given_in_the_config_is_blocked_with_its_output(
    run_audit: Callable[..., Audit], tmp_path: Path, tags: Callable[[], str]
) -> None:
    audit = run_audit(override_config(tmp_path, "given-bad", tags(), 8081, 5), "-k", "startup")
    assert audit.code == 3, audit.stderr
    startup = audit.check("fresh_install.startup")
    assert startup["status"] == "blocked"
    assert "waiting for healthcheck reports healthy" in startup["summary"]
    probes = next(e for e in startup["evidence"] if "State.Health.Log" in e["title"])
    assert "exit 1: " in probes["content"]
    assert "Connection refused" in probes["content"]

"""Another job removes an in-flight audit's container or volume: BLOCKED, never a data-loss FAIL.

On a shared engine, another job's `docker rm -f` or a careless clean-up can remove what a
running audit uses. The audit cannot judge a cycle whose container or volume vanished: it says
what was removed by something else, and exits 3 (BLOCKED) without a traceback.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import docker
import pytest

from persistaudit.engine import LABEL_OWNER_HOST, LABEL_OWNER_PID
from tests.e2e.conftest import leftovers
from tests.helpers import NOTES_APP, REPO

pytestmark = pytest.mark.docker

REMOVED = "removed by something else"


def owned_by(pid: int) -> dict[str, list[str]]:
    return {"label": [f"{LABEL_OWNER_PID}={pid}", f"{LABEL_OWNER_HOST}={socket.gethostname()}"]}


def start_audit(out: Path) -> subprocess.Popen[str]:
    config = str(NOTES_APP / "audit.yaml")
    return subprocess.Popen(
        [sys.executable, "-m", "persistaudit", "run", config, "--out", str(out)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def run_until(proc: subprocess.Popen[str], trigger: str) -> list[str]:
    """The audit's progress lines up to the first that contains trigger."""
    assert proc.stderr is not None
    lines = []
    for line in proc.stderr:
        lines.append(line)
        if trigger in line:
            return lines
    pytest.fail(f"the audit ended before {trigger!r}:\n{''.join(lines)}")


def finish(proc: subprocess.Popen[str], out: Path, before: list[str]) -> dict[str, Any]:
    _, rest = proc.communicate(timeout=180)
    stderr = "".join(before) + rest
    assert "Traceback" not in stderr, stderr
    assert proc.returncode == 3, stderr
    return dict(json.loads((out / "results.json").read_text()))


def assert_blocked_not_failed(results: dict[str, Any], *names: str) -> None:
    """No check failed; the cycle that was hit is BLOCKED, saying what was removed."""
    statuses = {c["id"]: c["status"] for c in results["checks"]}
    assert results["verdict"] == "BLOCKED", statuses
    assert "failed" not in statuses.values(), statuses
    cycles = [c for c in results["checks"] if c["id"].endswith(".retention")]
    hit = [c for c in cycles if c["status"] != "passed"]
    assert hit, statuses
    for check in hit:
        assert check["status"] == "blocked", check
        assert REMOVED in check["summary"], check["summary"]
        assert any(name in check["summary"] for name in names), (names, check["summary"])


@pytest.mark.parametrize(
    "trigger",
    [
        "restart: writing",  # while canary records are written
        "docker restart",  # while the container restarts and is waited for
        "restart: reading",  # while they are read back: they are not "lost"
        "recreate: writing",
    ],
)
def test_container_removed_during_a_cycle_is_blocked(tmp_path: Path, trigger: str) -> None:
    engine = docker.from_env()
    out = tmp_path / "out"
    proc = start_audit(out)
    before = run_until(proc, trigger)
    containers = engine.containers.list(filters=owned_by(proc.pid))
    assert len(containers) == 1
    containers[0].remove(force=True)  # another job's docker rm -f
    results = finish(proc, out, before)
    assert_blocked_not_failed(results, f"container {containers[0].name}")
    assert leftovers(engine, proc.pid) == []


@pytest.mark.parametrize("trigger", ["restart: writing", "docker stop + rm"])
def test_container_and_volume_removed_like_a_careless_clean_is_blocked(
    tmp_path: Path, trigger: str
) -> None:
    engine = docker.from_env()
    out = tmp_path / "out"
    proc = start_audit(out)
    before = run_until(proc, trigger)
    # What a clean-up of every labelled resource does: containers first, then volumes.
    names = []
    for container in engine.containers.list(all=True, filters=owned_by(proc.pid)):
        with contextlib.suppress(docker.errors.NotFound):
            container.remove(force=True, v=True)
            names.append(f"container {container.name}")
    volumes = engine.volumes.list(filters=owned_by(proc.pid))
    for volume in volumes:
        with contextlib.suppress(docker.errors.NotFound, docker.errors.APIError):
            volume.remove(force=True)
            names.append(f"volume {volume.name}")
    results = finish(proc, out, before)
    assert_blocked_not_failed(results, *names)
    assert leftovers(engine, proc.pid) == []
    for volume in volumes:  # nor left re-created by the engine, empty and unlabelled
        assert not engine.volumes.list(filters={"name": f"^{volume.name}$"})


def test_volume_removed_inside_a_recreate_is_blocked_not_recreated_empty(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The narrowest window: the old container is removed, the new one not yet started.

    The engine re-creates a missing named volume, empty and unlabelled, for a container that
    mounts it, so a re-create that carried on would read back nothing: a false data-loss FAIL.
    Here another job removes the volume right after the re-create removed the old container.
    """
    from persistaudit.audit import TargetAudit
    from persistaudit.config import load_config

    engine = docker.from_env()
    config = load_config(NOTES_APP / "audit.yaml")
    audit = TargetAudit.create(config, engine, lambda _msg: None)
    volume = f"persistaudit-{config.name}-{audit.run_id}"
    remove_container = engine.api.remove_container

    def remove_then_lose_the_volume(*args: Any, **kwargs: Any) -> None:
        remove_container(*args, **kwargs)
        engine.volumes.get(volume).remove(force=True)  # another job's clean-up, just then

    try:
        assert audit.fresh.blocked is None
        monkeypatch.setattr(engine.api, "remove_container", remove_then_lose_the_volume)
        cycle = audit.recreate_cycle
        monkeypatch.undo()
        lost = cycle.read_back.missing if cycle.read_back else []
        assert not lost, f"{len(lost)} canaries reported lost from a volume the engine re-made"
        assert not cycle.failure
        assert cycle.blocked.startswith(f"volume {volume} was {REMOVED} during the recreate")
        assert not engine.volumes.list(filters={"name": f"^{volume}$"})  # not re-created empty
    finally:
        monkeypatch.undo()
        audit.close()
    assert leftovers(engine, os.getpid()) == []
    assert not engine.volumes.list(filters={"name": f"^{volume}$"})

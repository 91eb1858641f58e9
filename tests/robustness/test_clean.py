"""`persistaudit clean` on a shared engine: ended runs' leftovers go, live runs are left alone."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import docker
import pytest
from docker.models.containers import Container

from persistaudit import engine as labels
from tests.e2e.conftest import config_variant, leftovers, spawn
from tests.helpers import NOTES_APP, REPO

pytestmark = pytest.mark.docker

GO = "/tmp/persistaudit-test-go"  # in the container: the live run's target is ready once it exists


def start(args: list[str], tmpdir: Path) -> subprocess.Popen[str]:
    return spawn("-m", "persistaudit", *args, tmpdir=tmpdir)


def wait_for(predicate: Callable[[], bool], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def names(resources: list[Any]) -> list[str]:
    """ "container NAME" and "volume NAME", as `clean` prints them."""
    return sorted(
        f"{'container' if isinstance(r, Container) else 'volume'} {r.name}" for r in resources
    )


def test_clean_removes_what_ended_runs_left_and_leaves_live_runs_alone(
    engine: docker.DockerClient, tmp_path: Path
) -> None:
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    # An ended run: killed (SIGKILL, no clean-up) once its target is up.
    killed = start(["run", str(NOTES_APP / "audit.yaml"), "--out", str(tmp_path / "k")], tmpdir)
    assert killed.stdout is not None
    for line in killed.stdout:
        if "ready in" in line:
            break
    killed.kill()
    killed.communicate(timeout=30)
    left_by_killed = names(leftovers(engine, killed.pid))
    assert len(left_by_killed) == 2, left_by_killed  # its container and its volume
    assert len(list(tmpdir.iterdir())) == 1  # its scratch folder, with copies of the database

    # A run on another host: it cannot be checked from here.
    elsewhere = engine.volumes.create(
        f"persistaudit-pa-clean-{labels.new_run_id()}",
        labels={
            **labels.labels("ffffffff", "pa-clean"),
            labels.LABEL_OWNER_HOST: "elsewhere.invalid",
            labels.LABEL_OWNER_PID: "1",
        },
    )

    # A live run, held in its readiness wait until this test says go.
    config = config_variant(
        tmp_path,
        NOTES_APP / "audit.yaml",
        "live",
        readiness={
            "command": ["python3", "-c", f"import os, sys; sys.exit(not os.path.exists({GO!r}))"],
            "timeout": 120,
        },
    )
    live_out = tmp_path / "live"
    live = start(["run", str(config), "--out", str(live_out), "-k", "fresh_install"], tmpdir)
    try:
        wait_for(lambda: len(leftovers(engine, live.pid)) == 2, "the live run's container")
        in_use = names(leftovers(engine, live.pid))

        clean = subprocess.run(
            [sys.executable, "-m", "persistaudit", "clean"],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            env={**os.environ, "TMPDIR": str(tmpdir)},
        )
        assert clean.returncode == 0, clean.stderr
        lines = clean.stdout.splitlines()
        for name in left_by_killed:
            assert f"removed {name} (run " in clean.stdout, clean.stdout
        assert f"pid {killed.pid} has ended)" in clean.stdout
        assert any(line.startswith("removed scratch folder ") for line in lines), clean.stdout
        assert leftovers(engine, killed.pid) == []
        for name in in_use:
            assert f"left {name}: its run (pid {live.pid}) is still running" in lines, clean.stdout
        assert f"left volume {elsewhere.name}: owned by a run on host elsewhere.invalid" in lines
        assert lines[-1].endswith("--all removes them")
        assert names(leftovers(engine, live.pid)) == in_use
        assert len(list(tmpdir.iterdir())) == 1  # the live run's scratch folder is still there

        # Its target's port is published on loopback only: the engine is on this machine.
        container = next(r for r in leftovers(engine, live.pid) if isinstance(r, Container))
        bindings = container.attrs["NetworkSettings"]["Ports"]["8080/tcp"]
        assert {b["HostIp"] for b in bindings} == {"127.0.0.1"}

        container.exec_run(["python3", "-c", f"open({GO!r}, 'w').close()"])
        output, _ = live.communicate(timeout=120)
    finally:
        if live.poll() is None:
            live.kill()
        elsewhere.remove(force=True)
    assert live.returncode == 0, output
    assert json.loads((live_out / "results.json").read_text())["verdict"] == "PASS"
    assert leftovers(engine, live.pid) == []
    assert list(tmpdir.iterdir()) == []

"""Real-container tests: each runs persistaudit the way a user does, against a real engine."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import pytest
import yaml
from docker.models.containers import Container

from persistaudit.engine import LABEL_OWNER_HOST, LABEL_OWNER_PID
from tests.helpers import NOTES_APP, REPO


@dataclass
class Audit:
    code: int
    stderr: str
    results: dict[str, Any]
    report: str

    def check(self, check_id: str) -> dict[str, Any]:
        return next(c for c in self.results["checks"] if c["id"] == check_id)

    def statuses(self) -> dict[str, str]:
        return {c["id"]: c["status"] for c in self.results["checks"]}


def persistaudit(
    *args: str,
    timeout: float = 300,
    tmpdir: Path | None = None,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run the persistaudit command; the result's .pid names the process for leftovers().

    With tmpdir, the process's temp dir (TMPDIR): what it leaves there can be counted,
    apart from other audits running on the same machine. env: variables set besides the
    environment's own.
    """
    extra = {**({"TMPDIR": str(tmpdir)} if tmpdir else {}), **(env or {})}
    with subprocess.Popen(
        [sys.executable, "-m", "persistaudit", *args],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **extra} if extra else None,
    ) as proc:
        try:
            stdout, stderr = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
    done = subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)
    done.pid = proc.pid  # type: ignore[attr-defined]
    return done


def plain_pytest_args(config: Path | str, out: Path, *extra: str) -> list[str]:
    """`python ARGS` for the plain pytest route: the bundled suites with the plugin's options."""
    return [
        "-m",
        "pytest",
        "suites",
        "-q",
        "-p",
        "no:cacheprovider",
        f"--persistaudit-config={config}",
        f"--persistaudit-out={out}",
        *extra,
    ]


def spawn(*args: str, tmpdir: Path | None = None) -> subprocess.Popen[str]:
    """Start `python ARGS` in the repository without waiting; stdout and stderr in one stream.

    With tmpdir, the process's temp dir (TMPDIR), as for persistaudit().
    """
    return subprocess.Popen(
        [sys.executable, *args],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "TMPDIR": str(tmpdir)} if tmpdir else None,
    )


def leftovers(engine: docker.DockerClient, pid: int) -> list[object]:
    """Containers, volumes and networks that the persistaudit process `pid` left on the engine.

    Scoped by the owner labels, so that other audits on the same engine (a shared CI runner,
    tests run side by side) do not count.
    """
    selector = {"label": [f"{LABEL_OWNER_PID}={pid}", f"{LABEL_OWNER_HOST}={socket.gethostname()}"]}
    return [
        *engine.containers.list(all=True, filters=selector),
        *engine.volumes.list(filters=selector),
        *engine.networks.list(filters=selector),
    ]


def config_variant(tmp_path: Path, source: Path, name: str, **changes: object) -> Path:
    """A bundled config with some keys replaced, written where its paths still resolve."""
    config = yaml.safe_load(source.read_text())
    config["build"]["context"] = str(NOTES_APP)
    config["expect"]["manifest"] = str(REPO / "expected" / "notes-app.yaml")
    config.update(changes)
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


BASE_IMAGE = os.environ.get("PERSISTAUDIT_BASE_IMAGE", "persistaudit/base-python:bookworm")
MANAGED = {"io.persistaudit.managed": "true"}  # what `persistaudit clean` finds if left


@contextlib.contextmanager
def sleeping_container(
    engine: docker.DockerClient, prefix: str, setup: str, binds: dict[str, str] | None = None
) -> Iterator[Container]:
    """A container of the base image doing nothing, with a fresh volume at /data (and host
    folders bound as binds says: host path -> mount point), after the shell command setup
    ran in it; removed with its volume afterwards."""
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    volume = engine.volumes.create(name, labels=MANAGED)
    mounts = {volume.name: {"bind": "/data", "mode": "rw"}}
    mounts |= {host: {"bind": inside, "mode": "rw"} for host, inside in (binds or {}).items()}
    made = engine.containers.run(
        BASE_IMAGE, ["sleep", "600"], name=name, labels=MANAGED, volumes=mounts, detach=True
    )
    try:
        code, output = made.exec_run(["sh", "-c", setup])
        assert code == 0, output
        yield made
    finally:
        made.remove(force=True)
        volume.remove(force=True)


@pytest.fixture(scope="session")
def engine() -> docker.DockerClient:
    try:
        client = docker.from_env()
        client.ping()
    except docker.errors.DockerException as exc:
        pytest.fail(f"these tests need a Docker engine (run `make test`, which starts one): {exc}")
    return client


@pytest.fixture(scope="session")
def run_audit(
    engine: docker.DockerClient, tmp_path_factory: pytest.TempPathFactory
) -> Callable[..., Audit]:
    """Run `persistaudit run CONFIG` once per config and argument list; cached per session."""
    cache: dict[tuple[str, ...], Audit] = {}

    def run(config: Path | str, *extra: str) -> Audit:
        key = (str(config), *extra)
        if key not in cache:
            out = tmp_path_factory.mktemp("audit")
            tmpdir = tmp_path_factory.mktemp("tmp")
            proc = persistaudit("run", str(config), "--out", str(out), *extra, tmpdir=tmpdir)
            left = sorted(tmpdir.iterdir())
            assert not left, f"{config} left copies of the database in {left}"
            results_file = out / "results.json"
            results = json.loads(results_file.read_text()) if results_file.exists() else {}
            report = (out / "report.md").read_text() if (out / "report.md").exists() else ""
            cache[key] = Audit(proc.returncode, proc.stderr, results, report)
            left_behind = leftovers(engine, proc.pid)  # type: ignore[attr-defined]
            assert not left_behind, f"{config} left {left_behind} behind"
        return cache[key]

    return run

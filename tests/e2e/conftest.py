"""Real-container tests: each runs persistaudit the way a user does, against a real engine."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import pytest
import yaml

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


def persistaudit(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "persistaudit", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def config_variant(tmp_path: Path, source: Path, name: str, **changes: object) -> Path:
    """A bundled config with some keys replaced, written where its paths still resolve."""
    config = yaml.safe_load(source.read_text())
    config["build"]["context"] = str(NOTES_APP)
    config["expect"]["manifest"] = str(REPO / "expected" / "notes-app.yaml")
    config.update(changes)
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


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
            scratch = set(Path(tempfile.gettempdir()).glob("persistaudit-*"))
            proc = persistaudit("run", str(config), "--out", str(out), *extra)
            left = set(Path(tempfile.gettempdir()).glob("persistaudit-*")) - scratch
            assert not left, f"{config} left copies of the database in {sorted(left)}"
            results_file = out / "results.json"
            results = json.loads(results_file.read_text()) if results_file.exists() else {}
            report = (out / "report.md").read_text() if (out / "report.md").exists() else ""
            cache[key] = Audit(proc.returncode, proc.stderr, results, report)
            leftovers = [
                *engine.containers.list(all=True, filters={"label": "io.persistaudit.managed"}),
                *engine.volumes.list(filters={"label": "io.persistaudit.managed"}),
            ]
            assert not leftovers, f"{config} left {leftovers} behind"
        return cache[key]

    return run

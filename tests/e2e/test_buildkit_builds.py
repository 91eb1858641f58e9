"""A target whose Dockerfile needs BuildKit (RUN --mount=type=cache) is built through BuildKit
and audited; the legacy builder, which is all the engine API offers, refuses it; and where no
docker CLI offers BuildKit the run stops with one line naming the engine and what to install.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import docker
import pytest
import yaml

from tests.e2e.conftest import Audit
from tests.helpers import NOTES_APP, REPO

pytestmark = pytest.mark.docker

CONFIG = NOTES_APP / "variants" / "buildkit.yaml"
TAG = "persistaudit/notes-app-buildkit:audit"  # its own tag, not the shared notes-app's


def variant(tmp_path: Path, name: str, **build: object) -> Path:
    config = yaml.safe_load(CONFIG.read_text())
    config["name"] = name
    config["build"] = {**config["build"], "context": str(NOTES_APP), **build}
    config["expect"]["manifest"] = str(REPO / "expected" / "notes-app.yaml")
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def run(
    config: Path, out: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "persistaudit", "run", str(config), "--out", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
        check=False,
    )


def test_a_buildkit_only_dockerfile_is_built_with_buildkit_and_audited(
    run_audit: Callable[..., Audit], engine: docker.DockerClient
) -> None:
    audit = run_audit(CONFIG)
    assert audit.code == 0, audit.stderr
    assert audit.results["verdict"] == "PASS"
    image_id = audit.results["target"]["image_id"]
    # BuildKit marks the history of what it built; the legacy builder leaves it empty.
    history = engine.api.history(image_id)
    assert any(h.get("Comment") == "buildkit.dockerfile.v0" for h in history), history
    assert any("py_compile" in h.get("CreatedBy", "") for h in history)  # the RUN --mount step
    assert engine.images.get(TAG).id == image_id


def test_the_legacy_builder_refuses_it(tmp_path: Path) -> None:
    """What every build did before BuildKit support: the engine API's builder."""
    config = variant(tmp_path, "notes-app-buildkit-legacy", builder="legacy")
    done = run(config, tmp_path / "out")
    assert done.returncode == 2, done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith(f"persistaudit: error: {config}: build: building {NOTES_APP} failed: ")
    assert "the --mount option requires BuildKit" in last
    assert not (tmp_path / "out" / "results.json").exists()


def test_without_a_buildkit_cli_it_says_so_in_one_line(tmp_path: Path) -> None:
    """Only a docker CLI from 23 on without the buildx plugin: no BuildKit builder at all."""
    fake = tmp_path / "bin"
    fake.mkdir()
    cli = fake / "docker"
    cli.write_text(
        "#!/bin/sh\n"
        'if [ "$1" = version ]; then echo 28.2.2; exit 0; fi\n'
        'echo "docker: unknown command: docker $1" >&2; exit 1\n'
    )
    cli.chmod(cli.stat().st_mode | stat.S_IXUSR)
    env = {k: v for k, v in os.environ.items() if k not in ("DOCKER_HOST", "DOCKER_CONTEXT")}
    env["PATH"] = str(fake)
    env["DOCKER_CONFIG"] = str(tmp_path / "docker-config")  # the default context
    config = variant(tmp_path, "notes-app-buildkit-nocli")
    done = run(config, tmp_path / "out", env)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert lines[-1] == (
        f"persistaudit: error: {config}: build: Dockerfile.buildkit needs BuildKit (RUN --mount "
        "at line 20), but no docker CLI here builds with BuildKit for the engine at "
        f"unix:///var/run/docker.sock (context default): {cli} (client 28) has no buildx "
        f"plugin. {_hint()}"
    )
    assert "Traceback" not in done.stderr


def _hint() -> str:
    from persistaudit.buildkit import INSTALL_HINT

    return INSTALL_HINT

"""Compose v2 as set-up leaves it: it answers, and drives a project's life on this engine.

What the compose driver will rely on: up, restart, down that keeps the named volume, up on
that volume again, and down -v that removes everything.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import docker
import docker.errors
import pytest
import yaml

from persistaudit import engine as labels
from tests.e2e.conftest import leftovers
from tests.helpers import REPO

pytestmark = pytest.mark.docker

BASE_IMAGE = os.environ.get("PERSISTAUDIT_BASE_IMAGE", "persistaudit/base-python:bookworm")
SETUP = REPO / "scripts" / "setup.sh"


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        list(args), capture_output=True, text=True, timeout=180, env=env, check=False
    )


def is_v2(command: list[str], env: dict[str, str] | None = None) -> str:
    """The version command reports ("2.40.3"), or "" unless it answers as v2 or later."""
    try:
        done = run(*command, "version", "--short", env=env)
    except FileNotFoundError:
        return ""
    version = done.stdout.strip().removeprefix("v")
    major = version.split(".")[0]
    return version if done.returncode == 0 and major.isdigit() and int(major) >= 2 else ""


def compose_command() -> list[str]:
    """`docker compose` where the CLI plugin answers, else the venv's docker-compose."""
    if is_v2(["docker", "compose"]):
        return ["docker", "compose"]
    return [str(Path(sys.executable).with_name("docker-compose"))]


def test_compose_answers_as_v2_after_setup() -> None:
    assert is_v2(compose_command()), (
        "neither `docker compose` nor the venv's docker-compose answers as Compose v2: "
        "run `scripts/setup.sh compose`"
    )
    done = run("bash", str(SETUP), "compose")  # done already: nothing to do, nothing said
    assert (done.returncode, done.stdout) == (0, ""), done.stderr


def own_docker_config(tmp_path: Path) -> tuple[dict[str, str], Path]:
    """An environment whose DOCKER_CONFIG is tmp_path, and where its plugin would be linked."""
    env = {**os.environ, "DOCKER_CONFIG": str(tmp_path)}
    if is_v2(["docker", "compose"], env):
        pytest.skip("a system-wide Compose plugin answers even with an empty DOCKER_CONFIG")
    plugin = tmp_path / "cli-plugins" / "docker-compose"
    plugin.parent.mkdir()
    return env, plugin


def test_setup_links_the_cli_plugin_where_none_is(tmp_path: Path) -> None:
    env, plugin = own_docker_config(tmp_path)
    plugin.symlink_to(tmp_path / "removed-venv" / "docker-compose")  # left by a removed venv
    done = run("bash", str(SETUP), "compose", env=env)
    assert done.returncode == 0, done.stderr
    assert "no longer exists" in done.stdout
    assert is_v2(["docker", "compose"], env)
    venv_compose = Path(sys.executable).with_name("docker-compose")
    assert plugin.resolve() == venv_compose.resolve()  # the binary, not pip's wrapper script
    assert is_v2([str(venv_compose)])
    failed = run(str(venv_compose), "-f", str(tmp_path / "missing.yaml"), "config")
    assert failed.returncode != 0  # pip's wrapper would have exited 0


def test_setup_leaves_a_plugin_of_someone_else_alone(tmp_path: Path) -> None:
    env, plugin = own_docker_config(tmp_path)
    plugin.write_text("#!/bin/sh\nexit 3\n")
    plugin.chmod(0o755)
    done = run("bash", str(SETUP), "compose", env=env)
    assert done.returncode == 0, done.stderr
    assert "fix or remove it" in done.stdout
    assert plugin.read_text() == "#!/bin/sh\nexit 3\n"


class Project:
    """A throw-away compose project: one sleeping service on a named volume, all labelled."""

    def __init__(self, folder: Path) -> None:
        run_id = labels.new_run_id()
        self.name = labels.run_prefix("compose-check", run_id)  # random: the run id
        owned = labels.labels(run_id, "compose-check")  # owner: this test process
        self.file = folder / "compose.yaml"
        self.file.write_text(
            yaml.safe_dump(
                {
                    "services": {
                        "sleeper": {
                            "image": BASE_IMAGE,
                            "pull_policy": "never",
                            "command": ["python3", "-c", "import time; time.sleep(60)"],
                            "stop_grace_period": "1s",  # PID 1 ignores SIGTERM
                            "labels": owned,
                            "volumes": ["data:/data"],
                        }
                    },
                    "volumes": {"data": {"labels": owned}},
                    "networks": {"default": {"labels": owned}},
                }
            )
        )
        self.volume = f"{self.name}_data"

    def __call__(self, *args: str) -> str:
        done = run(*compose_command(), "-p", self.name, "-f", str(self.file), *args)
        assert done.returncode == 0, f"compose {' '.join(args)}: {done.stderr}"
        return done.stdout

    def remove_all(self, engine: docker.DockerClient) -> None:
        """Whatever the project left, gone, even after a failure half-way."""
        with contextlib.suppress(OSError, subprocess.TimeoutExpired):  # the sweep below still runs
            run(*compose_command(), "-p", self.name, "-f", str(self.file), "down", "-v", "-t", "0")
        selector = {"label": f"com.docker.compose.project={self.name}"}
        for container in engine.containers.list(all=True, filters=selector):
            container.remove(force=True, v=True)
        for volume in engine.volumes.list(filters=selector):
            volume.remove(force=True)
        for network in engine.networks.list(filters=selector):
            network.remove()


def test_a_compose_project_keeps_its_volume_through_restart_and_down(
    engine: docker.DockerClient, tmp_path: Path
) -> None:
    if shutil.which("docker") is None:
        pytest.fail("no docker client: run `make setup`")
    project = Project(tmp_path)
    try:
        project("up", "-d")
        write = "open('/data/kept', 'w').write('persisted')"
        project("exec", "-T", "sleeper", "python3", "-c", write)
        first = project("ps", "-q").strip()
        project("restart")
        assert project("ps", "-q").strip() == first  # restarted, not re-created
        project("down")  # keeps the named volume
        assert project("ps", "-a", "-q").strip() == ""
        assert engine.volumes.get(project.volume).attrs["Labels"][labels.LABEL_MANAGED] == "true"
        project("up", "-d")
        assert project("ps", "-q").strip() != first  # a new container ...
        read = "print(open('/data/kept').read())"
        assert project("exec", "-T", "sleeper", "python3", "-c", read).strip() == "persisted"
        project("down", "-v")
        with pytest.raises(docker.errors.NotFound):
            engine.volumes.get(project.volume)
        assert leftovers(engine, os.getpid()) == []
    finally:
        project.remove_all(engine)
    assert leftovers(engine, os.getpid()) == []

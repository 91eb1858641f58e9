"""Readiness strategies, bad images and the plain-pytest route, on real containers."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from pathlib import Path

import docker
import docker.errors
import pytest
import yaml

from tests.e2e.conftest import Audit, config_variant, persistaudit, plain_pytest_args
from tests.helpers import NOTES_APP, REPO

pytestmark = pytest.mark.docker


def variant(tmp_path: Path, name: str, **changes: object) -> Path:
    return config_variant(tmp_path, NOTES_APP / "audit.yaml", name, **changes)


@pytest.mark.parametrize(
    "readiness",
    [
        {"log": r"ready on port \d+", "timeout": 30},
        {
            "command": [
                "python3",
                "-c",
                "import urllib.request as u; u.urlopen('http://127.0.0.1:8080/health', timeout=1)",
            ],
            "timeout": 30,
        },
    ],
    ids=["log", "command"],
)
def test_log_and_command_readiness_survive_restart(
    run_audit: Callable[..., Audit], tmp_path: Path, readiness: dict[str, object]
) -> None:
    config = variant(tmp_path, "ready", readiness=readiness)
    audit = run_audit(config, "-k", "startup or restart")
    assert audit.code == 0, audit.stderr
    ran = {k: v for k, v in audit.statuses().items() if v != "skipped"}
    # The graceful stop and the idempotent starts restart it too: readiness holds each time.
    assert ran == {
        "fresh_install.startup": "passed",
        "restart.retention": "passed",
        "restart.graceful_stop": "passed",
        "restart.idempotent_init": "passed",
    }
    skipped = audit.check("recreate.retention")
    assert skipped["summary"] == "not selected for this run"  # a subset says what it left out
    assert "Not tested: `fresh_install.database`, `fresh_install.schema`" in audit.report


def test_readiness_timeout_is_blocked_with_logs(
    run_audit: Callable[..., Audit], tmp_path: Path
) -> None:
    config = variant(
        tmp_path, "timeout", readiness={"http": {"path": "/nope", "port": 8080}, "timeout": 3}
    )
    audit = run_audit(config, "-k", "startup")
    assert audit.code == 3
    startup = audit.check("fresh_install.startup")
    assert (
        "not ready after 3 s (waiting for HTTP GET /nope on port 8080 answers 200"
        in startup["summary"]
    )
    logs = next(e for e in startup["evidence"] if e["kind"] == "log")["content"]
    assert "ready on port 8080" in logs  # not pushed out by the probe's own requests
    assert "GET /nope -> 404  [repeated" in logs


def test_unknown_image_is_one_line_exit_2(tmp_path: Path) -> None:
    config = yaml.safe_load((NOTES_APP / "audit.yaml").read_text())
    del config["build"]
    config["image"] = "persistaudit-test/does-not-exist:never"
    config["expect"]["manifest"] = str(REPO / "expected" / "notes-app.yaml")
    path = tmp_path / "unknown.yaml"
    path.write_text(yaml.safe_dump(config))
    proc = persistaudit("run", str(path), "--out", str(tmp_path / "out"))
    assert proc.returncode == 2
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("persistaudit: error: ")
    assert "image: persistaudit-test/does-not-exist:never is not on this engine" in last
    assert "Traceback" not in proc.stderr


def test_snapshot_of_a_live_target_matches_the_committed_manifest(
    engine: object, tmp_path: Path
) -> None:
    out = tmp_path / "live.yaml"
    proc = persistaudit("snapshot", str(NOTES_APP / "audit.yaml"), "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    assert "wrote" in proc.stderr
    proc = persistaudit("diff", str(REPO / "expected" / "notes-app.yaml"), str(out))
    assert proc.returncode == 0, proc.stdout
    proc = persistaudit("snapshot", str(NOTES_APP / "defects" / "missing-tables.yaml"))
    assert proc.returncode == 0
    (tmp_path / "partial.yaml").write_text(proc.stdout)
    proc = persistaudit(
        "diff", str(REPO / "expected" / "notes-app.yaml"), str(tmp_path / "partial.yaml")
    )
    assert proc.returncode == 1
    assert "missing table api_tokens" in proc.stdout


def test_snapshot_of_a_target_with_several_databases_writes_the_one_chosen(
    engine: object, tmp_path: Path
) -> None:
    config = REPO / "fixtures" / "targets" / "agent-memory" / "audit.yaml"
    proc = persistaudit("snapshot", str(config))
    assert proc.returncode == 2
    assert "lists 2 databases: choose one with --database (main, vectors)" in proc.stderr
    out = tmp_path / "vectors.yaml"
    proc = persistaudit("snapshot", str(config), "--database", "vectors", "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    # The live vector store has the schema its DDL declares (the committed manifest).
    proc = persistaudit("diff", str(REPO / "expected" / "agent-memory-vectors.yaml"), str(out))
    assert proc.returncode == 0, proc.stdout


def test_suites_run_through_plain_pytest(engine: object, tmp_path: Path) -> None:
    """Service teams run the same suites with pytest and the plugin's options."""
    import subprocess
    import sys

    out = tmp_path / "out"
    proc = subprocess.run(
        [
            sys.executable,
            *plain_pytest_args(NOTES_APP / "audit.yaml", out, "-k", "schema or journal"),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "2 passed" in proc.stdout
    results = json.loads((out / "results.json").read_text())
    ran = [c["id"] for c in results["checks"] if c["status"] != "skipped"]
    assert ran == ["fresh_install.schema", "fresh_install.journal_mode"]


OVERRIDE_CONFTEST = """
import pytest
from persistaudit.config import load_config


@pytest.fixture(scope="session")
def persistaudit_config():
    config = load_config(CONFIG)
    build = config.build.model_copy(update={"tag": "persistaudit/notes-app:audit"})
    return config.model_copy(update={"name": "notes-from-code", "build": build})
"""

OVERRIDE_CHECK = """
import pytest


@pytest.mark.check("team.volume")
def test_volume(persistaudit_started, persistaudit_check):
    persistaudit_check.summary = persistaudit_started.runtime.volume_name
"""


def test_an_overridden_config_fixture_is_the_target_audited(
    engine: docker.DockerClient, tmp_path: Path
) -> None:
    """A team's conftest builds the target in code: that target is started and reported."""
    import subprocess
    import sys

    from tests.e2e.conftest import leftovers

    team = tmp_path / "team"
    team.mkdir()
    config = repr(str(NOTES_APP / "audit.yaml"))
    (team / "conftest.py").write_text(OVERRIDE_CONFTEST.replace("CONFIG", config))
    (team / "test_team.py").write_text(OVERRIDE_CHECK)
    out = tmp_path / "out"
    with subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            f"--persistaudit-out={out}",
        ],
        cwd=team,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    ) as proc:
        output, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, output
    results = json.loads((out / "results.json").read_text())
    assert results["target"]["name"] == "notes-from-code"
    assert results["target"]["config"] == "persistaudit_config fixture"
    # Bundled checks not run are listed as skipped (a partial run); the team's check ran.
    ran = [c for c in results["checks"] if c["status"] != "skipped"]
    (check,) = ran
    assert check["status"] == "passed"
    assert check["summary"].startswith("persistaudit-notes-from-code-")
    assert leftovers(engine, proc.pid) == []


def test_suites_without_a_config_are_skipped() -> None:
    """Installing persistaudit breaks no other pytest run: without a target, checks skip."""
    import subprocess
    import sys

    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "suites", "-q", "-rs", "-p", "no:cacheprovider"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert " passed" not in proc.stdout
    assert "skipped" in proc.stdout.splitlines()[-1]
    assert "no target config for the persistaudit checks: pass --persistaudit-config CONFIG" in (
        proc.stdout
    )


def test_a_remembered_image_id_that_was_removed_is_resolved_again(
    engine: docker.DockerClient, tmp_path: Path
) -> None:
    """A long-lived process (the pytest route, a test session) must not start a container from
    an image id another job has removed since: the engine would try to pull "sha256:..." and
    the target would read as one that cannot start."""
    import secrets

    from persistaudit.config import load_config
    from persistaudit.images import ensure_image

    context = tmp_path / "context"
    context.mkdir()
    (context / "Dockerfile").write_text(
        "FROM persistaudit/base-python:bookworm\n"
        f"LABEL io.persistaudit.test.cache={secrets.token_hex(8)}\n"
    )
    tag = f"persistaudit-test/image-cache:{secrets.token_hex(4)}"
    config_path = variant(tmp_path, "image-cache", build={"context": str(context), "tag": tag})
    config = load_config(config_path)
    first = ensure_image(engine, config)
    try:
        engine.images.remove(first, force=True)
        second = ensure_image(engine, config)
        assert engine.images.get(second).id == second
    finally:
        with contextlib.suppress(docker.errors.DockerException):
            engine.images.remove(tag, force=True)

"""`persistaudit run` as a CI pipeline uses it, on the demo: the copies of the outputs,
--format json, --keep, and GitHub Actions annotations on a planted defect."""

from __future__ import annotations

import json
import os
import pty
import signal
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import docker
import pytest

from persistaudit.engine import LABEL_MANAGED, LABEL_RUN
from tests.e2e.conftest import config_variant, leftovers, persistaudit
from tests.helpers import NOTES_APP, REPO

pytestmark = pytest.mark.docker

LIGHT = {  # the demo with fewer canaries and without the slower optional checks
    "canary": {
        "records": 3,
        "write": [
            {
                "method": "POST",
                "path": "/notes",
                "port": 8080,
                "json": {"title": "{marker}", "body": "canary {i}"},
                "expect_status": 201,
            }
        ],
        "read": [
            {
                "path": "/notes?title={marker}",
                "port": 8080,
                "expect_body_contains": "{marker}",
            }
        ],
    },
    "suites": {
        "backup": {"enabled": False},
        "graceful_stop": {"enabled": False},
        "idempotent_init": {"enabled": False},
    },
}


def run(*args: str, env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """persistaudit off GitHub Actions (whatever runs these tests), with env set besides."""
    return persistaudit(*args, timeout=timeout, env={"GITHUB_ACTIONS": "", **env})


def test_copies_json_stdout_and_keep_on_the_demo(
    engine: docker.DockerClient, tmp_path: Path
) -> None:
    config = config_variant(tmp_path, NOTES_APP / "audit.yaml", "light", **LIGHT)
    out, junit, res, html = (tmp_path / n for n in ("out", "j.xml", "r.json", "r.html"))
    env = {"XDG_STATE_HOME": str(tmp_path / "state")}
    proc = run(
        "run", str(config), "--out", str(out), "--junit", str(junit), "--json", str(res),
        "--html", str(html), "--format", "json", "--keep",
        env=env,
    )  # fmt: skip
    pid = proc.pid  # type: ignore[attr-defined]
    try:
        assert proc.returncode == 0, proc.stderr
        doc = json.loads(proc.stdout)  # stdout is the one document, nothing else
        assert (doc["verdict"], doc["exit_code"], doc["error"]) == ("PASS", 0, None)
        assert doc["files"] == {
            "results.json": str(out / "results.json"),
            "report.md": str(out / "report.md"),
            "junit.xml": str(out / "junit.xml"),
            "junit": str(junit),
            "json": str(res),
            "html": str(html),
        }
        assert res.read_bytes() == (out / "results.json").read_bytes()
        assert junit.read_bytes() == (out / "junit.xml").read_bytes()
        assert ET.parse(junit).getroot().get("failures") == "0"
        assert "<!DOCTYPE html>" in html.read_text()
        results = json.loads(res.read_text())
        assert {c["id"] for c in doc["checks"]} == {c["id"] for c in results["checks"]}
        # Progress and the verdict line are on stderr, as plain lines (no terminal here).
        assert "fresh_install.schema" in proc.stderr
        assert "PASS: " in proc.stderr
        assert "\x1b[" not in proc.stderr

        # --keep: the last container still runs on the audited volume, labelled.
        [kept] = doc["kept"]
        assert kept["containers"]
        assert kept["volumes"]
        for name in kept["containers"]:
            container = engine.containers.get(name)
            assert container.status == "running"
            assert container.labels[LABEL_RUN] == kept["run"]
            assert container.labels[LABEL_MANAGED] == "true"
        for name in kept["volumes"]:
            assert engine.volumes.get(name).attrs["Labels"][LABEL_RUN] == kept["run"]
        assert kept["remove"][0] == f"persistaudit clean --run {kept['run']}"
        assert f"docker rm -f {' '.join(kept['containers'])}" in kept["remove"]
        assert f"  remove with: docker volume rm {kept['volumes'][0]}" in proc.stderr
        assert (tmp_path / "state" / "persistaudit" / "kept" / f"{kept['run']}.json").is_file()
        assert leftovers(engine, pid)

        removal = run("clean", "--run", kept["run"], env=env)
        assert removal.returncode == 0, removal.stderr
        assert f"removed container {kept['containers'][0]} (--run {kept['run']})" in (
            removal.stdout
        )
        assert not leftovers(engine, pid)
        assert not (tmp_path / "state" / "persistaudit" / "kept" / f"{kept['run']}.json").exists()
    finally:
        for thing in leftovers(engine, pid):  # only this test's own run
            thing.remove(force=True)  # type: ignore[attr-defined]


def test_github_annotations_on_a_failing_defect(
    engine: docker.DockerClient, tmp_path: Path
) -> None:
    config = config_variant(
        tmp_path, NOTES_APP / "defects" / "missing-tables.yaml", "missing-tables", **LIGHT
    )
    summary = tmp_path / "step-summary.md"
    proc = run(
        "run", str(config), "--out", str(tmp_path / "out"),
        "-k", "startup or schema",
        env={"GITHUB_ACTIONS": "true", "GITHUB_STEP_SUMMARY": str(summary)},
    )  # fmt: skip
    assert proc.returncode == 1, proc.stderr
    errors = [line for line in proc.stdout.splitlines() if line.startswith("::error")]
    assert len(errors) == 1, proc.stdout
    assert errors[0].startswith("::error title=fresh_install.schema::")
    assert "3 of 10 tables missing" in errors[0]
    text = summary.read_text()
    assert text.startswith("## persistaudit: FAIL for notes-app-missing-tables")
    assert "| Metric | Target | Achieved | Status |" in text
    assert "- **FAIL** `fresh_install.schema`: " in text
    assert not leftovers(engine, proc.pid)  # type: ignore[attr-defined]


def test_an_interrupted_keep_run_removes_everything(
    engine: docker.DockerClient, tmp_path: Path
) -> None:
    """--keep is for a complete audit: a cancelled job leaves nothing on the runner."""
    config = config_variant(tmp_path, NOTES_APP / "audit.yaml", "light", **LIGHT)
    state = tmp_path / "state"
    args = ["run", str(config), "--out", str(tmp_path / "o"), "--keep", "--format", "json"]
    with subprocess.Popen(
        [sys.executable, "-m", "persistaudit", *args],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "XDG_STATE_HOME": str(state)},
    ) as proc:
        assert proc.stderr is not None
        try:
            for line in proc.stderr:
                if "restart: writing" in line:
                    proc.send_signal(signal.SIGTERM)
                    break
            stdout, _ = proc.communicate(timeout=120)
        finally:
            if proc.poll() is None:
                proc.kill()
    assert proc.returncode == 143
    doc = json.loads(stdout)
    assert (doc["verdict"], doc["exit_code"]) == (None, 143)
    assert doc["error"].startswith("interrupted by SIGTERM: no results written")
    assert not leftovers(engine, proc.pid)
    assert not list(state.rglob("*.json"))


def test_the_live_status_on_a_terminal_never_reaches_json_stdout(
    engine: docker.DockerClient, tmp_path: Path
) -> None:
    """stderr a terminal (the live status is drawn there), stdout a pipe: stdout stays JSON."""
    config = config_variant(tmp_path, NOTES_APP / "audit.yaml", "light", **LIGHT)
    primary, secondary = pty.openpty()
    args = ["run", str(config), "--out", str(tmp_path / "o"), "-k", "startup or schema"]
    with subprocess.Popen(
        [sys.executable, "-m", "persistaudit", *args, "--format", "json"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=secondary,
        env={**os.environ, "TERM": "xterm", "NO_COLOR": "1", "GITHUB_ACTIONS": ""},
    ) as proc:
        os.close(secondary)
        terminal = b""
        while True:
            try:
                chunk = os.read(primary, 65536)
            except OSError:  # the process closed its end
                break
            if not chunk:
                break
            terminal += chunk
        stdout, _ = proc.communicate(timeout=300)
    os.close(primary)
    assert proc.returncode == 0, terminal.decode(errors="replace")
    doc = json.loads(stdout)
    assert doc["verdict"] == "PASS"
    screen = terminal.decode(errors="replace")
    assert "check 1 of 2 fresh_install.startup" in screen  # the status line, drawn in place
    assert "\r\x1b[2K" in screen  # redrawn: carriage return, erase line
    assert "fresh_install.schema" in screen
    assert "\x1b[3" not in screen  # NO_COLOR: no foreground colour
    assert not leftovers(engine, proc.pid)

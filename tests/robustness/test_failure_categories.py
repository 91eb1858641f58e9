"""Honest failure categories on real containers: what the tool's exit code and report claim.

A bug inside persistaudit is ERROR (exit 4), never BLOCKED or FAIL; a canary write the
service refuses before a cycle is BLOCKED (nothing was restarted), never data loss; the plain
pytest route exits with the same codes as `persistaudit run`.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import docker
import pytest

from tests.e2e.conftest import config_variant, leftovers, persistaudit, plain_pytest_args
from tests.helpers import NOTES_APP, REPO
from tests.robustness.fault_plugin import FAULT

pytestmark = pytest.mark.docker

SECRET = "pa-fault-secret-5b1e0c"
FAULT_ENV = {"PYTEST_ADDOPTS": "-p tests.robustness.fault_plugin", "PA_FAULT_SECRET": SECRET}


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={**os.environ, **(env or {})},
    )


def results_of(out: Path) -> dict[str, Any]:
    return dict(json.loads((out / "results.json").read_text()))


def check(results: dict[str, Any], check_id: str) -> dict[str, Any]:
    return next(c for c in results["checks"] if c["id"] == check_id)


def secret_config(tmp_path: Path) -> Path:
    """The good notes-app with a secret in its environment (taken from the test's)."""
    return config_variant(
        tmp_path,
        NOTES_APP / "audit.yaml",
        "faulty",
        env={"NOTES_DB_PATH": "/data/notes.db", "FAULT_TOKEN": "${PA_FAULT_SECRET}"},
    )


def test_a_bug_inside_a_check_is_error_exit_4_with_its_traceback(tmp_path: Path) -> None:
    out = tmp_path / "out"
    proc = run(
        "-m",
        "persistaudit",
        "run",
        str(secret_config(tmp_path)),
        "--out",
        str(out),
        "-k",
        "startup or constraints",
        env=FAULT_ENV,
    )
    assert proc.returncode == 4, proc.stderr
    assert "Traceback" not in proc.stderr
    assert SECRET not in proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if "TypeError" in ln]
    assert len(lines) == 1, proc.stderr  # one line names the check and the exception
    assert "fresh_install.constraints" in lines[0]
    assert f"TypeError: {FAULT}" in lines[0]
    assert "[REDACTED]" in lines[0]

    results = results_of(out)
    assert results["verdict"] == "ERROR"
    assert check(results, "fresh_install.startup")["status"] == "passed"
    broken = check(results, "fresh_install.constraints")
    assert broken["status"] == "error"
    assert broken["summary"].startswith(f"internal error in persistaudit: TypeError: {FAULT}")
    assert "evidence/internal-error-fresh_install.constraints.txt" in broken["summary"]

    trace = (out / "evidence" / "internal-error-fresh_install.constraints.txt").read_text()
    assert trace.startswith("Traceback (most recent call last):")
    assert "_broken_probe" in trace
    assert f"TypeError: {FAULT} 'token=[REDACTED]'" in trace
    assert SECRET not in trace
    assert "evidence/internal-error-fresh_install.constraints.txt" in results["evidence_files"]

    report = (out / "report.md").read_text()
    assert "| Verdict | **ERROR**" in report
    assert "persistaudit itself failed inside `fresh_install.constraints`" in report
    assert "`fresh_install.constraints` (internal error)" in report.split("Not tested:")[1]
    junit = ET.fromstring((out / "junit.xml").read_text())
    case = next(c for c in junit.iter("testcase") if c.get("name") == "fresh_install.constraints")
    error = case.find("error")
    assert error is not None
    assert error.get("type") == "internal-error"


@pytest.mark.parametrize(
    ("config", "extra", "code"),
    [
        (NOTES_APP / "defects" / "license-blocker.yaml", [], 3),  # BLOCKED: it never starts
        (NOTES_APP / "defects" / "ephemeral-db.yaml", ["-k", "mount"], 1),  # FAIL
        (NOTES_APP / "audit.yaml", ["-k", "startup or constraints"], 4),  # ERROR (fault below)
    ],
    ids=["blocked", "fail", "error"],
)
def test_plain_pytest_exits_with_the_verdicts_code(
    tmp_path: Path, config: Path, extra: list[str], code: int
) -> None:
    out = tmp_path / "out"
    plugin = ["-p", "tests.robustness.fault_plugin"] if code == 4 else []
    proc = run(*plain_pytest_args(config, out, *plugin, *extra))
    assert proc.returncode == code, proc.stdout + proc.stderr
    verdict = {3: "BLOCKED", 1: "FAIL", 4: "ERROR"}[code]
    assert results_of(out)["verdict"] == verdict


def test_a_refused_canary_write_blocks_the_cycle_with_request_response_and_logs(
    tmp_path: Path,
) -> None:
    out = tmp_path / "out"
    proc = persistaudit(
        "run", str(NOTES_APP / "defects" / "canary-writes-fail.yaml"), "--out", str(out)
    )
    stderr = proc.stderr
    assert proc.returncode == 3, stderr
    # Neither cycle got to its action (only the graceful stop and idempotent starts restart).
    assert "restart: reading" not in stderr
    assert "recreate: reading" not in stderr
    assert "docker stop + rm" not in stderr  # the re-create never removed its container
    results = results_of(out)
    assert results["verdict"] == "BLOCKED"
    statuses = {c["id"]: c["status"] for c in results["checks"]}
    assert {k for k, v in statuses.items() if v != "passed"} == {
        "restart.retention",
        "recreate.retention",
    }
    restart = check(results, "restart.retention")
    assert restart["status"] == "blocked"
    assert restart["summary"].startswith("the restart cycle could not be exercised: writing canary")
    # How many were written first depends on which cycle met the full disk first: the
    # re-create runs before the restart when volume.undeclared_databases asks for it.
    assert re.search(
        r"failed after [05] of 20 were written: POST /notes answered 500, expected 201",
        restart["summary"],
    )
    evidence = {e["title"]: e for e in restart["evidence"]}
    assert evidence["Canary write request"]["content"].startswith(
        "POST /notes (container port 8080)"
    )
    response = evidence["Response"]["content"]
    assert response.startswith("status 500")
    assert "database or disk is full" in response
    logs = next(e for e in restart["evidence"] if e["kind"] == "log")
    assert "refusing write: sqlite3.OperationalError: database or disk is full" in logs["content"]
    metrics = {m["name"]: m for m in results["metrics"]}
    assert metrics["Data retention after restart"]["status"] == "blocked"
    recreate = check(results, "recreate.retention")
    assert recreate["status"] == "blocked"
    assert "could not be exercised" in recreate["summary"]
    report = (out / "report.md").read_text()
    assert "Unverified: Data written before a restart is lost" in report
    assert leftovers(docker.from_env(), proc.pid) == []  # type: ignore[attr-defined]


def test_k_that_selects_no_check_is_a_usage_error(tmp_path: Path) -> None:
    out = tmp_path / "out"
    proc = run(
        "-m", "persistaudit", "run", str(NOTES_APP / "audit.yaml"), "--out", str(out), "-k", "nope"
    )
    assert proc.returncode == 2, proc.stderr
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("persistaudit: error:")]
    assert errors == [
        "persistaudit: error: -k 'nope' selects no check (check ids are suite.check, for "
        "example fresh_install.schema or restart.retention)"
    ]
    assert not (out / "results.json").exists()

"""Failure categories without Docker: checks of a service team's own, run by the plugin.

None of these checks starts the target, so the plugin's outcome mapping, verdict and exit
code can be proven in a plain pytest subprocess, exactly as a team would run them.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from persistaudit.compare import compare
from persistaudit.findings import EXIT_CODES, CheckResult, verdict

CHECKS = """
import pytest
from persistaudit.exceptions import CanaryError


@pytest.mark.check("team.passes")
def test_passes(persistaudit_check):
    persistaudit_check.summary = "fine"


@pytest.mark.check("team.broken")
def test_broken(persistaudit_check):
    persistaudit_check.summary = "about to look a key up"
    return {}["token hunter2 missing"]  # a bug in the check: KeyError


@pytest.mark.check("team.fails")
def test_fails(persistaudit_check):
    persistaudit_check.summary = "3 rows lost"
    assert False, persistaudit_check.summary


@pytest.mark.check("team.blocked")
def test_blocked(persistaudit_check):
    raise CanaryError("POST /notes answered 503")


def test_unmarked():
    assert False, "a plain test of the team's own"
"""


def run_checks(config_dir: Path, select: str) -> tuple[int, dict[str, Any], str]:
    (config_dir / "test_team.py").write_text(CHECKS)
    out = config_dir / "out"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "test_team.py",
            "-p",
            "no:cacheprovider",
            "--persistaudit-config=audit.yaml",
            f"--persistaudit-out={out}",
            "-k",
            select,
        ],
        cwd=config_dir,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    results = json.loads((out / "results.json").read_text())
    return proc.returncode, results, proc.stdout + proc.stderr


def statuses(results: dict[str, Any]) -> dict[str, str]:
    return {c["id"]: c["status"] for c in results["checks"] if c["status"] != "skipped"}


def test_a_bug_in_a_check_is_error_exit_4_with_the_traceback_as_evidence(
    config_dir: Path,
) -> None:
    code, results, output = run_checks(config_dir, "passes or broken")
    assert code == 4, output
    assert results["verdict"] == "ERROR"
    assert statuses(results) == {"team.passes": "passed", "team.broken": "error"}
    broken = next(c for c in results["checks"] if c["id"] == "team.broken")
    assert broken["summary"] == (
        "internal error in persistaudit: KeyError: 'token [REDACTED] missing' (a bug, not a "
        "finding about the target; traceback in evidence/internal-error-team.broken.txt)"
    )
    trace = (config_dir / "out" / "evidence" / "internal-error-team.broken.txt").read_text()
    assert "Traceback (most recent call last)" in trace
    assert 'return {}["token [REDACTED] missing"]' in trace  # redacted like every evidence file
    assert "hunter2" not in trace


def test_a_fail_outranks_an_error_and_the_error_is_still_shown(config_dir: Path) -> None:
    code, results, output = run_checks(config_dir, "passes or broken or fails")
    assert code == 1, output
    assert results["verdict"] == "FAIL"
    assert statuses(results)["team.broken"] == "error"


def test_a_persistaudit_error_in_a_check_is_blocked_exit_3(config_dir: Path) -> None:
    code, results, output = run_checks(config_dir, "passes or blocked")
    assert code == 3, output
    assert results["verdict"] == "BLOCKED"
    blocked = next(c for c in results["checks"] if c["id"] == "team.blocked")
    assert blocked["summary"] == "the check could not run: CanaryError: POST /notes answered 503"


@pytest.mark.parametrize(("select", "code"), [("passes", 0), ("passes or unmarked", 1)])
def test_plain_tests_of_the_session_still_count(config_dir: Path, select: str, code: int) -> None:
    assert run_checks(config_dir, select)[0] == code


def result(status: str) -> CheckResult:
    return CheckResult(f"s.{status}", "s", status, "")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("found", "expected"),
    [
        (["passed", "failed", "error", "blocked"], "FAIL"),
        (["passed", "error", "blocked"], "ERROR"),
        (["passed", "blocked", "skipped"], "BLOCKED"),
        (["passed", "waived", "skipped"], "PASS"),
        ([], "BLOCKED"),
    ],
)
def test_verdict_precedence_is_fail_error_blocked_pass(found: list[str], expected: str) -> None:
    assert verdict([result(s) for s in found]) == expected
    assert EXIT_CODES[expected] == {"PASS": 0, "FAIL": 1, "BLOCKED": 3, "ERROR": 4}[expected]


def test_compare_ranks_error_between_blocked_and_fail() -> None:
    def doc(verdict: str, status: str) -> dict[str, Any]:
        check = {"id": "s.c", "status": status}
        return {"verdict": verdict, "checks": [check], "metrics": []}

    assert [c.kind for c in compare(doc("BLOCKED", "blocked"), doc("ERROR", "error"))] == [
        "regressed",
        "regressed",
    ]
    assert [c.kind for c in compare(doc("FAIL", "failed"), doc("ERROR", "error"))] == [
        "improved",
        "improved",
    ]


def test_every_exit_code_is_in_the_readme_table_and_the_run_help() -> None:
    from click.testing import CliRunner

    from persistaudit.cli import main
    from tests.helpers import REPO

    readme = (REPO / "README.md").read_text()
    table = readme.split("## Verdicts and exit codes")[1].split("\n## ")[0]
    helptext = " ".join(CliRunner().invoke(main, ["run", "--help"]).output.split())
    for name, code in EXIT_CODES.items():
        assert f"| `{code}` | {name}" in table
        assert f"{code} {name}" in helptext
    assert "| `2` | Usage or config error" in table
    assert "2 bad usage or config" in helptext
    assert "| `128+N` | Interrupted by signal N" in table

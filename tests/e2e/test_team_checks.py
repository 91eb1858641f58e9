"""A service team's own checks run in the same audit as the bundled ones: through
`persistaudit run --checks`, and through plain pytest (`--persistaudit-bundled` for an
installed package without a suites/ folder). A run of some checks only is a partial audit.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.conftest import persistaudit
from tests.helpers import NOTES_APP

pytestmark = pytest.mark.docker

CONFIG = NOTES_APP / "audit.yaml"
# Words that appear in no folder name of these tests (pytest's -k also matches folders).
SUBSET = "seed_rows or startup"

CONFTEST = """
from persistaudit import catalog
from persistaudit.catalog import Check, Suite

catalog.register(Suite("team", 10, "Team checks", "The service team's own checks."))
catalog.register(
    Check(
        "team.seed_rows", 0, "A fresh install has no seed rows.", "Fresh installs ship demo data.",
        "MEDIUM", "Seed demo data only on request.", "Remove the seed rows: {summary}",
    )
)
"""

CHECKS = """
import pytest


@pytest.mark.check("team.seed_rows")
def test_no_seed_rows_on_a_fresh_install(persistaudit_started, persistaudit_check):
    notes = persistaudit_started.fresh.database.facts.counts["notes"]
    persistaudit_check.metric("Notes on a fresh install", "0", str(notes), notes == 0)
    persistaudit_check.add("Rows counted", f"notes: {notes}")
    persistaudit_check.summary = f"{notes} notes on a fresh install"
    assert notes == 0, persistaudit_check.summary
"""


@pytest.fixture
def team(tmp_path: Path) -> Path:
    """A team repository's tests/audit/ folder: a conftest that registers the check, and it."""
    folder = tmp_path / "repo" / "tests" / "audit"
    folder.mkdir(parents=True)
    (folder / "conftest.py").write_text(CONFTEST)
    (folder / "test_team_data.py").write_text(CHECKS)
    return folder


def outputs(out: Path) -> tuple[dict[str, object], str, str]:
    doc = json.loads((out / "results.json").read_text())
    return doc, (out / "report.md").read_text(), (out / "junit.xml").read_text()


def status(doc: dict[str, object], check_id: str) -> str:
    checks = doc["checks"]
    assert isinstance(checks, list)
    return str(next(c["status"] for c in checks if c["id"] == check_id))


def test_bundled_and_team_checks_run_in_one_full_audit(team: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    proc = persistaudit("run", str(CONFIG), "--checks", str(team), "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.splitlines()[-1] == f"PASS: {out / 'report.md'}"  # a full audit
    doc, report, junit = outputs(out)
    assert doc["coverage"] == {
        "complete": True,
        "bundled_not_run": [],
        "custom_checks": ["team.seed_rows"],
    }
    assert status(doc, "team.seed_rows") == "passed"
    assert status(doc, "restart.retention") == "passed"
    assert "## Team checks (`team`)" in report
    assert "`team.seed_rows`: 0 notes on a fresh install" in report
    assert "| Notes on a fresh install | 0 | 0 | PASS |" in report
    assert 'name="team.seed_rows"' in junit
    assert "Partial audit" not in report


def test_a_subset_with_team_checks_is_a_partial_pass(team: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    proc = persistaudit("run", str(CONFIG), "--checks", str(team), "-k", SUBSET, "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    line = proc.stderr.splitlines()[-1]
    assert line.startswith("PASS (partial: "), line
    assert "bundled checks did not run: fresh_install.database, " in line
    assert "restart (all 3)" in line
    assert line.endswith(f"): {out / 'report.md'}")
    doc, report, junit = outputs(out)
    coverage = doc["coverage"]
    assert isinstance(coverage, dict)
    assert coverage["complete"] is False
    assert "fresh_install.startup" not in coverage["bundled_not_run"]
    assert "recreate.retention" in coverage["bundled_not_run"]
    assert status(doc, "team.seed_rows") == "passed"
    assert "**Verdict: PASS (partial)**" in report
    assert "> Partial audit: " in report
    assert 'name="team.seed_rows"' in junit
    assert 'name="recreate.retention"' in junit  # listed as skipped, not left out


def pytest_route(team: Path, out: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    """Plain pytest in the team's repository (not this one: no suites/ folder, no ini)."""
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            str(team),
            "-q",
            "-p",
            "no:cacheprovider",
            f"--persistaudit-config={CONFIG}",
            f"--persistaudit-out={out}",
            *extra,
        ],
        cwd=team.parent.parent,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
        check=False,
    )


def test_the_pytest_route_runs_the_installed_suites_with_the_team_s(
    team: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    proc = pytest_route(team, out, "--persistaudit-bundled", "-k", SUBSET)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    doc, report, _ = outputs(out)
    assert status(doc, "fresh_install.startup") == "passed"
    assert status(doc, "team.seed_rows") == "passed"
    assert "verdict PASS (partial: " in proc.stdout + proc.stderr
    assert "**Verdict: PASS (partial)**" in report


def test_a_team_check_alone_never_reads_as_a_full_pass(team: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    proc = pytest_route(team, out)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    doc, report, _ = outputs(out)
    coverage = doc["coverage"]
    assert isinstance(coverage, dict)
    assert coverage["custom_checks"] == ["team.seed_rows"]
    assert "fresh_install.startup" in coverage["bundled_not_run"]  # not even the start ran
    assert status(doc, "fresh_install.startup") == "skipped"
    total = len(coverage["bundled_not_run"])
    assert f"verdict PASS (partial: {total} of {total} bundled checks" in proc.stdout + proc.stderr
    assert "**Verdict: PASS (partial)**" in report

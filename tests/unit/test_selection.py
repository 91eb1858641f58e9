"""A run that left bundled checks out (-k, or a team's checks alone) says which, in its
verdict, results.json and report; a custom check alone never reads as a full PASS."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from persistaudit import catalog, selection
from persistaudit.collector import CheckRecorder, ResultCollector
from persistaudit.config import load_config
from persistaudit.progress import Progress
from persistaudit.redact import Redactor
from persistaudit.report import render_markdown
from tests.helpers import GOOD_CONFIG, MANIFEST

BUNDLED = [c.id for c in catalog.bundled()]
ALWAYS_ON = [c for c in BUNDLED if c.split(".")[0] in ("fresh_install", "volume", "recreate")]


@pytest.fixture
def team_check() -> Any:
    catalog.register(catalog.Suite("team", 90, "The team's own checks"))
    catalog.register(catalog.Check("team.seed_rows", 0, "No seed rows.", "Demo data.", "LOW", "-"))
    yield "team.seed_rows"
    catalog.unregister("team.seed_rows")


def collector(tmp_path: Path) -> ResultCollector:
    (tmp_path / "audit.yaml").write_text(GOOD_CONFIG)
    (tmp_path / "manifest.yaml").write_text(MANIFEST)
    target = load_config(tmp_path / "audit.yaml")
    redactor = Redactor({})
    return ResultCollector(
        target,
        Progress(redactor, writer=lambda emit: None),
        redactor,
        from_file=True,
        order=[],
        started_at="2026-01-01T00:00:00+00:00",
    )


def passed(results: ResultCollector, check_id: str) -> None:
    recorder = CheckRecorder(check_id)
    recorder.summary = "fine"
    results.record(recorder, None, 0.1, None)


def test_the_catalog_knows_which_checks_are_bundled(team_check: str) -> None:
    assert "fresh_install.schema" in BUNDLED
    assert catalog.is_bundled("fresh_install.schema[vectors]")
    assert not catalog.is_bundled(team_check)
    assert team_check not in [c.id for c in catalog.bundled()]


def test_a_team_check_alone_lists_every_bundled_check_as_not_run(
    tmp_path: Path, team_check: str
) -> None:
    results = collector(tmp_path)
    passed(results, team_check)
    doc = results.document()
    assert doc["verdict"] == "PASS"  # the verdict of what ran, and its exit code ...
    coverage = doc["coverage"]
    assert coverage["complete"] is False  # ... but not a full audit
    assert coverage["custom_checks"] == [team_check]
    # Every bundled check the config switches on; crash, backup and upgrade are off in it.
    assert coverage["bundled_not_run"] == [c for c in BUNDLED if results.target.suites.enabled(c)]
    assert set(ALWAYS_ON) <= set(coverage["bundled_not_run"])
    assert not any(c.startswith(("crash.", "upgrade.")) for c in coverage["bundled_not_run"])
    listed = {c["id"]: c for c in doc["checks"]}
    assert listed["fresh_install.schema"]["status"] == "skipped"
    assert listed["fresh_install.schema"]["summary"] == "not selected for this run"
    assert [c["id"] for c in doc["checks"]][-1] == team_check  # catalog order, team's last
    text = selection.verdict_text(doc)
    assert text.startswith(f"PASS (partial: {len(coverage['bundled_not_run'])} of ")
    assert "fresh_install (all 7)" in text
    assert "recreate.retention" in text


def test_a_full_run_is_complete_and_its_verdict_plain(tmp_path: Path, team_check: str) -> None:
    results = collector(tmp_path)
    for check_id in [c for c in BUNDLED if results.target.suites.enabled(c)] + [team_check]:
        passed(results, check_id)
    doc = results.document()
    assert doc["coverage"] == {
        "complete": True,
        "bundled_not_run": [],
        "custom_checks": [team_check],
    }
    assert selection.verdict_text(doc) == "PASS"
    report = render_markdown(doc)
    assert "**Verdict: PASS**" in report
    assert "Partial audit" not in report


def test_a_k_subset_names_what_it_left_out(tmp_path: Path) -> None:
    results = collector(tmp_path)
    passed(results, "fresh_install.startup")
    results.not_selected("fresh_install.schema")  # what pytest_deselected records
    doc = results.document()
    left = doc["coverage"]["bundled_not_run"]
    assert "fresh_install.schema" in left
    assert "fresh_install.startup" not in left
    # Six of fresh_install's seven did not run: named one by one, not as the whole suite.
    text = selection.verdict_text(doc)
    assert "fresh_install.schema" in text
    assert "fresh_install (all" not in text
    assert "volume (all 2)" in text
    report = render_markdown(doc)
    assert "| Verdict | **PASS** (partial: " in report
    assert "**Verdict: PASS (partial)**" in report
    assert "> Partial audit: " in report
    assert "`fresh_install.schema`" in report.split("> Partial audit: ")[1].split("\n")[0]


def test_one_database_of_several_that_ran_counts_for_its_check() -> None:
    checks = [
        {"id": "fresh_install.schema[main]", "suite": "fresh_install"},
        {"id": "fresh_install.schema[cache]", "suite": "fresh_install"},
    ]
    found = selection.coverage(checks, deselected={"fresh_install.schema[cache]"})
    assert found["bundled_not_run"] == []
    found = selection.coverage(checks, deselected={c["id"] for c in checks})
    assert found["bundled_not_run"] == ["fresh_install.schema"]


def test_results_without_coverage_read_as_before() -> None:
    doc = {"verdict": "FAIL", "checks": []}  # a results.json written before coverage
    assert selection.verdict_text(doc) == "FAIL"
    assert selection.not_run(doc) == []

"""Golden files: the rendered report for a passing, a failing and a blocked audit.

The results files come from real audits of notes-app (good, ephemeral-db, license-blocker,
the good one with a fault injected into the constraints check: tests/robustness/fault_plugin.py,
and the good one against a manifest that promises another schema: drift).
After an intended change to the report, regenerate with:
    PERSISTAUDIT_UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/unit/test_golden_reports.py
and review the diff of tests/golden/*.md like any other change.
"""

from __future__ import annotations

import json
import os
import re
import threading

import jsonschema
import pytest

from persistaudit import report
from persistaudit.junit import render_junit
from persistaudit.report import render_html, render_markdown
from tests.helpers import REPO

GOLDEN = REPO / "tests" / "golden"
CASES = ["pass", "fail", "blocked", "error", "drift"]


def load(case: str) -> dict[str, object]:
    return dict(json.loads((GOLDEN / f"{case}.results.json").read_text()))


@pytest.mark.parametrize("case", CASES)
def test_report_matches_its_golden_file(case: str) -> None:
    rendered = render_markdown(load(case))
    golden = GOLDEN / f"{case}.report.md"
    if os.environ.get("PERSISTAUDIT_UPDATE_GOLDEN"):
        golden.write_text(rendered)
    assert rendered == golden.read_text()


@pytest.mark.parametrize("case", CASES)
def test_results_follow_the_documented_schema(case: str) -> None:
    schema = json.loads((REPO / "src/persistaudit/schemas/results-v1.json").read_text())
    jsonschema.validate(load(case), schema)


def test_golden_reports_say_what_auditors_need() -> None:
    passed = (GOLDEN / "pass.report.md").read_text()
    assert "**Verdict: PASS**" in passed
    assert "| Data retention after re-create | 100% | 100.0% | PASS |" in passed
    assert "No check failed or was blocked." in passed
    failed = (GOLDEN / "fail.report.md").read_text()
    assert "| Volume mount type | named volume or bind | container layer | FAIL |" in failed
    assert "Put /app/state (the database's folder, not the file alone) on a named volume" in failed
    assert "| `volume.mount` (FAIL) | The database is not on persistent storage" in failed
    blocked = (GOLDEN / "blocked.report.md").read_text()
    assert "**Verdict: BLOCKED**" in blocked
    assert "licence key missing: notes-app requires NOTES_LICENSE_KEY to start" in blocked
    assert "Set the licence variable the service asks for" in blocked
    error = (GOLDEN / "error.report.md").read_text()
    assert "**Verdict: ERROR**: 8 passed, 0 failed, 0 blocked, 1 internal error" in error
    assert "persistaudit itself failed inside `fresh_install.constraints`" in error
    assert "- **ERROR** `fresh_install.constraints`: internal error in persistaudit" in error
    assert "Not tested: `fresh_install.constraints` (internal error)." in error
    assert "report it with evidence/internal-error-fresh_install.constraints.txt" in error


def test_schema_drift_shows_what_changed() -> None:
    drift = (GOLDEN / "drift.report.md").read_text()
    assert "| Schema differences | 0 | 5 | FAIL |" in drift
    assert "| Difference | Name | Expected | Actual |" in drift
    assert "| changed | users.email | collation: NOCASE | collation: BINARY |" in drift
    assert "| changed | audit_log | autoincrement: true | autoincrement: false |" in drift
    # Long SQL: a word diff in two halves, each side marked where it differs.
    assert (
        "| changed | note_summary | ... title as notebook, u.[-display_name-] as author from "
        "notes n join ... | ... title as notebook, u.{+email+} as author from notes n join ... |"
        in drift
    )
    assert "long SQL as a word diff: [-only expected-] and {+only found+}" in drift
    # Short SQL: both sides whole.
    assert (
        "| changed | notes: CHECK on status | status in ('draft', 'published', 'archived', "
        "'deleted') | status in ('draft', 'published', 'archived') |" in drift
    )
    # The summary keeps the one-line word diff.
    assert "CHECK on status: ... ('draft', 'published', 'archived' [-, 'deleted'-])" in drift


@pytest.mark.parametrize("case", CASES)
def test_golden_reports_read_as_written(case: str) -> None:
    """No HTML entity and no host path of the machine that ran the audit, in any report."""
    text = (GOLDEN / f"{case}.report.md").read_text()
    assert re.search(r"&(#\d+|#x[0-9a-f]+|[a-z]+);", text, re.IGNORECASE) is None
    assert re.search(r"(?<![\w.])/(work|tmp|home|root|Users)/", text) is None
    assert "host paths in this report are relative to the folder of results.json" in text
    findings = text.split("Key findings:")[1].split("## ")[0]
    assert "**PASS**" not in findings  # key findings: failures, blocks and errors only


def test_key_findings_of_a_pass_say_there_are_none() -> None:
    passed = (GOLDEN / "pass.report.md").read_text()
    findings = passed.split("Key findings:")[1].split("## ")[0]
    assert findings.strip() == "- None: no check failed or was blocked."


def test_html_is_the_same_content_as_a_standalone_page() -> None:
    html = render_html(load("fail"))
    assert html.startswith("<!DOCTYPE html>")
    assert (
        '<div class="verdict verdict-fail" role="status"><strong>FAIL</strong> '
        "7 passed, 2 failed, 0 blocked, of 9 checks</div>" in html
    )
    assert "@media print" in html
    assert "<table>" in html
    assert "<h1>Persistence validation report: notes-app-ephemeral-db</h1>" in html
    assert "container layer" in html


def test_junit_has_one_case_per_check_with_failures() -> None:
    import xml.etree.ElementTree as ET

    doc = load("fail")
    root = ET.fromstring(render_junit(doc))
    cases = root.findall(".//testcase")
    assert [c.get("name") for c in cases] == [c["id"] for c in doc["checks"]]  # type: ignore[index, attr-defined]
    failures = {c.get("name"): c.find("failure") for c in cases if c.find("failure") is not None}
    assert sorted(failures) == ["recreate.retention", "volume.mount"]
    assert "container layer" in (failures["volume.mount"].get("message") or "")  # type: ignore[union-attr]
    assert root.get("failures") == "2"
    blocked = ET.fromstring(render_junit(load("blocked")))
    assert blocked.get("errors") == "8"
    assert {e.get("type") for e in blocked.iter("error")} == {"blocked"}
    error = ET.fromstring(render_junit(load("error")))
    assert error.get("errors") == "1"
    assert error.get("failures") == "0"
    (internal,) = error.iter("error")
    assert internal.get("type") == "internal-error"
    assert "TypeError: injected fault" in (internal.get("message") or "")


def test_a_template_prepared_in_a_thread_is_not_compiled_again_for_the_report(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The audit compiles the report's template while the target starts (report.prepare in
    a thread); writing the report then only renders it, the same bytes as ever."""
    monkeypatch.setattr(report, "_envs", {})
    thread = threading.Thread(target=report.prepare)
    thread.start()
    thread.join()
    loader = report.environment().loader
    assert loader is not None

    def no_second_compilation(*args: object) -> None:
        raise AssertionError("the template was loaded again")

    monkeypatch.setattr(loader, "get_source", no_second_compilation)
    golden = (GOLDEN / "pass.report.md").read_text()
    assert report.render_markdown(load("pass")) == golden

from __future__ import annotations

import copy
import json
import re
from typing import Any

from persistaudit.report import fence, md_cell, render_markdown
from tests.helpers import REPO


def results(**overrides: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "schema": "persistaudit/results/v1",
        "verdict": "PASS",
        "started_at": "2026-11-24T09:00:00+00:00",
        "finished_at": "2026-11-24T09:00:05+00:00",
        "target": {
            "name": "demo",
            "image": "demo:1",
            "image_id": "sha256:ab",
            "driver": "image",
            "database": "/data/app.db",
            "mount": "/data",
            "config": "/x/audit.yaml",
        },
        "environment": {
            "persistaudit": "0.1.0",
            "python": "3.11",
            "sqlite": "3.40",
            "docker_engine": {"version": "20.10", "api_version": "1.41"},
            "config_sha256": "0" * 64,
        },
        "checks": [
            {
                "id": "fresh_install.startup",
                "suite": "fresh_install",
                "status": "passed",
                "summary": "ready in 0.3 s",
                "evidence": [],
                "duration_s": 0.3,
            },
            {
                "id": "restart.retention",
                "suite": "restart",
                "status": "passed",
                "summary": "100% retained",
                "duration_s": 1.0,
                "evidence": [{"title": "Rows", "content": "a 3 -> 3", "kind": "table"}],
            },
        ],
        "metrics": [
            {
                "name": "Data retention after restart",
                "target": "100%",
                "achieved": "100.0%",
                "status": "passed",
                "check": "restart.retention",
            }
        ],
    }
    doc.update(overrides)
    return doc


def test_passing_report_has_verdict_metrics_sections_and_sign_off() -> None:
    text = render_markdown(results())
    assert "**Verdict: PASS**" in text
    assert "| Metric | Target | Achieved | Status |" in text
    assert "| Data retention after restart | 100% | 100.0% | PASS |" in text
    assert "## Restart persistence (`restart`)" in text
    assert "### `restart.retention`: PASS" in text
    assert "No check failed or was blocked." in text
    assert "Backups and restores were not verified." in text
    assert "### Sign-off" in text


def test_same_results_render_the_same_bytes() -> None:
    doc = results()
    assert render_markdown(doc) == render_markdown(copy.deepcopy(doc))


def test_failed_and_blocked_checks_lead_and_carry_risks() -> None:
    doc = results(verdict="FAIL")
    doc["checks"][1].update(status="failed", summary="3 of 40 canary records lost")
    doc["checks"].append(
        {
            "id": "fresh_install.schema",
            "suite": "fresh_install",
            "status": "blocked",
            "summary": "target did not start",
            "evidence": [],
            "duration_s": 0,
        }
    )
    text = render_markdown(doc)
    findings = text.split("Key findings:")[1].split("## Validation metrics")[0]
    assert findings.index("FAIL") < findings.index("BLOCKED")
    assert "PASS" not in findings  # key findings are what needs the reader, never the passes
    assert "| `restart.retention` (FAIL) | Data written before a restart is lost" in text
    assert "Unverified: Fresh installs lack tables" in text


def test_hostile_names_cannot_break_tables_or_inject_html() -> None:
    doc = results()
    doc["metrics"][0]["achieved"] = "a|b `x` <script>alert(1)</script>\nnext"
    doc["checks"][0]["summary"] = "table <script> made"
    doc["checks"][1]["evidence"][0]["content"] = "```\nescape attempt\n```"
    text = render_markdown(doc)
    # Escaped the Markdown way: a backslash before <, never an HTML entity.
    assert "a\\|b \\`x\\` \\<script>alert(1)\\</script> next |" in text
    assert re.search(r"(?<!\\)<", text) is None
    assert "&lt;" not in text
    assert "````\n```\nescape attempt\n```\n````" in text


def test_hostile_names_stay_text_in_html() -> None:
    from persistaudit.report import render_html

    doc = results()
    doc["target"]["name"] = "<img src=x onerror=alert(1)>"
    doc["metrics"][0]["achieved"] = "<script>alert(1)</script>"
    doc["checks"][1]["evidence"][0]["content"] = "</pre><script>alert(2)</script>"
    html = render_html(doc)
    assert "<script>" not in html
    assert "<img" not in html
    assert "&lt;script&gt;" in html


def test_cell_and_fence_helpers() -> None:
    assert md_cell("x|y\nz") == "x\\|y z"
    assert fence("plain") == "```\nplain\n```"


def test_per_database_results_are_grouped_and_the_risk_names_the_database() -> None:
    doc = json.loads((REPO / "tests/golden/pass.results.json").read_text())
    recreate = next(c for c in doc["checks"] if c["id"] == "recreate.retention")
    main, cache = copy.deepcopy(recreate), copy.deepcopy(recreate)
    main["id"], cache["id"] = "recreate.retention[main]", "recreate.retention[cache]"
    cache.update(status="failed", summary="0 of 20 rows retained (0.0%)")
    doc["checks"] = [c for c in doc["checks"] if c is not recreate] + [main, cache]
    doc["target"]["databases"] = [
        {"name": "main", "path": "/data/notes.db"},
        {"name": "cache", "path": "/var/lib/notes/cache.db"},
    ]
    doc["verdict"] = "FAIL"

    text = render_markdown(doc)

    assert "### `recreate.retention`: one result per database" in text
    assert "| main | PASS |" in text
    assert "| cache | FAIL | 0 of 20 rows retained (0.0%) |" in text
    assert "#### `recreate.retention[cache]`: FAIL" in text
    assert (
        "| `recreate.retention[cache]` (FAIL) | Database cache (/var/lib/notes/cache.db): Data "
        "is lost" in text
    )
    assert "the service keeps it at /var/lib/notes/cache.db" in text  # its own path
    assert "### `restart.retention`: PASS" in text  # a plain id as before


def test_checks_blocked_by_a_missing_database_are_not_said_to_wait_for_a_start() -> None:
    doc = results(verdict="FAIL")
    doc["checks"].append(
        {
            "id": "fresh_install.schema",
            "suite": "fresh_install",
            "status": "blocked",
            "summary": "not evaluated: no database at /data/app.db (see fresh_install.database)",
            "evidence": [],
            "duration_s": 0,
        }
    )
    text = render_markdown(doc)
    assert "Once the target starts" not in text  # it did start: fresh_install.startup passed
    assert "Once what blocked them is resolved (each says why), re-run the audit:" in text
    doc["checks"][0].update(status="blocked", summary="restarts in a loop")
    assert "Once the target starts, re-run the audit:" in render_markdown(doc)

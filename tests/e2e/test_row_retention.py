"""Retention judged by lost rows: a service that updates rows as it works passes; one that
loses its database fails with the lost rows named."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.e2e.conftest import Audit
from tests.helpers import NOTES_APP

pytestmark = pytest.mark.docker


def rows_evidence(audit: Audit, check: str) -> str:
    evidence = audit.check(check)["evidence"]
    return str(next(e for e in evidence if e["title"].startswith("Rows per table"))["content"])


def table_row(evidence: str, table: str) -> list[str]:
    """The evidence row of one table: name, identity..., before, after, lost, changed, added."""
    return next(line.split() for line in evidence.splitlines() if line.split()[0] == table)


def test_a_service_that_updates_rows_as_it_works_passes(run_audit: Callable[..., Audit]) -> None:
    """The worker publishes drafts (UPDATE notes) and logs it (INSERT audit_log); on start it
    publishes the drafts left from before, so each cycle's canaries, drafts in the snapshot
    before, are published in the one after: changed and added rows, none lost. The digest
    comparison called this a CRITICAL data loss."""
    audit = run_audit(NOTES_APP / "variants" / "worker.yaml")
    assert audit.code == 0, audit.stderr
    assert audit.results["verdict"] == "PASS"
    for check in ("restart.retention", "recreate.retention"):
        assert audit.check(check)["status"] == "passed", audit.check(check)["summary"]
        summary = audit.check(check)["summary"]
        assert summary.startswith("20 canary records read back, no row lost: "), summary
        evidence = rows_evidence(audit, check)
        # notes  primary key (id)  before after lost changed added
        notes = table_row(evidence, "notes")
        assert notes[1:4] == ["primary", "key", "(id)"], evidence
        assert int(notes[6]) == 0, evidence  # none lost
        assert int(notes[7]) >= 1, evidence  # at least the last canary was published
        assert int(table_row(evidence, "audit_log")[8]) >= 1, evidence  # its "update" row
    metrics = {m["name"]: m["achieved"] for m in audit.results["metrics"]}
    assert metrics["Data retention after restart"] == "100.0%"
    assert metrics["Data retention after re-create"] == "100.0%"


def test_ephemeral_db_names_the_rows_lost_on_recreate(run_audit: Callable[..., Audit]) -> None:
    audit = run_audit(NOTES_APP / "defects" / "ephemeral-db.yaml")
    assert audit.code == 1
    recreate = audit.check("recreate.retention")
    assert recreate["status"] == "failed"
    summary = recreate["summary"]
    assert "20 of 20 canary records lost" in summary
    # The notes written before the re-create (its canaries, and the restart's if it ran
    # first) are lost, by id; never "x% retained".
    notes = table_row(rows_evidence(audit, "recreate.retention"), "notes")
    before = int(notes[4])
    assert before >= 20
    assert notes[5:7] == ["0", str(before)]
    assert f"{before} rows lost from notes (ids 1, 2, 3, 4, 5, ...)" in summary, summary
    assert "retained" not in summary
    assert audit.check("restart.retention")["status"] == "passed"

"""agent-memory, a service without a port, audited through exec canaries on a real engine.

fixtures/targets/agent-memory/audit-image.yaml runs it as one image on a named volume; the
variants below change one thing each (a build arg or an environment variable) and must be
caught by the check built for it, while the good service passes every check.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.e2e.conftest import Audit
from tests.helpers import REPO

pytestmark = pytest.mark.docker

AGENT_MEMORY = REPO / "fixtures" / "targets" / "agent-memory"
LICENCE_LINE = "licence key missing: agent-memory requires AGENT_MEMORY_LICENSE_KEY"


def variant(tmp_path: Path, name: str, defect: str = "none", **changes: Any) -> Path:
    """audit-image.yaml with another name (so another image tag), DEFECT and keys changed."""
    config = yaml.safe_load((AGENT_MEMORY / "audit-image.yaml").read_text())
    config["name"] = f"agent-memory-image-{name}"
    config["build"] = {"context": str(AGENT_MEMORY), "args": {"DEFECT": defect}}
    config["expect"]["manifest"] = str(REPO / "expected" / "agent-memory.yaml")
    env = dict(config["env"])
    for key, value in changes.pop("env", {}).items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    config.update(env=env, **changes)
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def failing(audit: Audit) -> dict[str, str]:
    return {k: v for k, v in audit.statuses().items() if v != "passed"}


def test_the_good_service_passes_every_check_through_exec_canaries(
    run_audit: Callable[..., Audit],
) -> None:
    audit = run_audit(AGENT_MEMORY / "audit-image.yaml")
    assert audit.code == 0, audit.stderr
    assert audit.results["verdict"] == "PASS"
    assert failing(audit) == {}
    # With fresh_install.database, the layer check, and the graceful stop and idempotent start.
    assert len(audit.statuses()) == 13
    recreate = audit.check("recreate.retention")
    assert "10 canary records read back" in recreate["summary"]  # this cycle's own
    written = next(e for e in recreate["evidence"] if e["title"] == "Write 10 canary records")
    assert written["content"].startswith("$ memory-cli stdio < (standard input) x 10 (markers pa-")
    assert '"method"' not in audit.report  # the standard input is never shown
    schema = audit.check("fresh_install.schema")["summary"]
    assert schema == "schema matches the manifest: 7 tables, 2 indexes, 0 views, 0 triggers"


def test_without_the_licence_the_service_loops_and_is_blocked_quoting_its_log(
    run_audit: Callable[..., Audit], tmp_path: Path
) -> None:
    config = variant(
        tmp_path,
        "licence-blocker",
        env={"AGENT_MEMORY_LICENSE_KEY": None},
        restart_policy="on-failure",
    )
    audit = run_audit(config)
    assert audit.code == 3, audit.stderr
    assert audit.results["verdict"] == "BLOCKED"
    startup = audit.check("fresh_install.startup")
    assert startup["status"] == "blocked"
    assert "restarts in a loop" in startup["summary"]
    assert "last exit code 78" in startup["summary"]
    logs = next(e for e in startup["evidence"] if e["kind"] == "log")["content"]
    assert LICENCE_LINE in logs
    assert LICENCE_LINE in audit.report


def test_a_refused_exec_write_blocks_the_cycles_with_the_command_and_its_answer(
    run_audit: Callable[..., Audit], tmp_path: Path
) -> None:
    config = variant(tmp_path, "quota", env={"AGENT_MEMORY_MAX_MEMORIES": "5"})
    audit = run_audit(config)
    assert audit.code == 3, audit.stderr
    assert failing(audit) == {"restart.retention": "blocked", "recreate.retention": "blocked"}
    # Neither cycle got to its action (only the graceful stop and idempotent starts restart).
    assert "restart: reading" not in audit.stderr
    assert "recreate: reading" not in audit.stderr
    # The cycle that ran first wrote five records before the quota refused the sixth.
    first = next(
        audit.check(c)
        for c in ("recreate.retention", "restart.retention")
        if "failed after 5 of 10 were written" in audit.check(c)["summary"]
    )
    assert first["summary"].startswith("the ")
    assert "cycle could not be exercised: writing canary pa-" in first["summary"]
    assert "memory-cli stdio exited 1, expected 0" in first["summary"]
    restart = first
    evidence = {e["title"]: e["content"] for e in restart["evidence"]}
    request = evidence["Canary write request"]
    assert request.startswith("$ memory-cli stdio < (standard input: ")
    assert request.endswith(" bytes, not shown)\n# expecting exit 0")
    assert "tools/call" not in request
    response = evidence["Response"]
    assert response.startswith("exit 1\n")
    assert "refusing write: memory quota of 5 reached" in response


def test_a_vector_store_off_the_volume_loses_every_recall_on_recreate(
    run_audit: Callable[..., Audit], tmp_path: Path
) -> None:
    audit = run_audit(variant(tmp_path, "second-db-off-volume", "second-db-off-volume"))
    assert audit.code == 1, audit.stderr
    # The main database is on the volume and keeps every row; the canaries, read through
    # the vector store's file, show what the re-create lost, and the layer check finds the
    # file this config does not declare.
    assert failing(audit) == {
        "recreate.retention": "failed",
        "volume.undeclared_databases": "failed",
    }
    assert audit.check("recreate.retention")["summary"] == "10 of 10 canary records lost"
    undeclared = audit.check("volume.undeclared_databases")["summary"]
    assert "/app/vectors/index.sqlite3" in undeclared


def test_missing_tables_are_named_against_the_manifest_made_from_the_models(
    run_audit: Callable[..., Audit], tmp_path: Path
) -> None:
    audit = run_audit(variant(tmp_path, "missing-tables", "missing-tables"))
    assert audit.code == 1, audit.stderr
    assert failing(audit) == {"fresh_install.schema": "failed"}
    assert audit.check("fresh_install.schema")["summary"] == (
        "3 of 7 tables missing: agent_teams, memory_consolidations, memory_sharing"
    )


def test_the_licence_usage_row_of_every_start_is_an_added_row_not_a_loss(
    run_audit: Callable[..., Audit], tmp_path: Path
) -> None:
    """With the row switched on (as audit.yaml has it) and no way to declare the table
    volatile, each cycle adds a licence_usage row: reported as added, never as lost (the
    digest comparison failed both cycles on it)."""
    audit = run_audit(variant(tmp_path, "usage", env={"AGENT_MEMORY_RECORD_USAGE": None}))
    assert audit.code == 0, audit.stderr
    assert failing(audit) == {}
    for check in ("restart.retention", "recreate.retention"):
        summary = audit.check(check)["summary"]
        assert "no row lost" in summary, summary
        evidence = next(
            e["content"]
            for e in audit.check(check)["evidence"]
            if e["title"].startswith("Rows per table")
        )
        usage = next(line.split() for line in evidence.splitlines() if line.startswith("licence_"))
        # licence_usage  identity...  before after lost changed added
        assert (usage[-3], usage[-2]) == ("0", "0"), evidence
        assert int(usage[-1]) >= 1, evidence

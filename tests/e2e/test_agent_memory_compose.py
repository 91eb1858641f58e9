"""agent-memory as it is deployed: a compose file with bind mounts, two SQLite files, no port.

fixtures/targets/agent-memory/audit.yaml and defects/*.yaml, run through `persistaudit run`
on a real engine: the good service passes every per-database check, and each planted variant
is caught by the check built for it, naming the database that is at fault (never the other).
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.e2e.conftest import Audit
from tests.helpers import REPO

pytestmark = pytest.mark.docker

AGENT_MEMORY = REPO / "fixtures" / "targets" / "agent-memory"
PER_DATABASE = [
    "fresh_install.database",
    "fresh_install.schema",
    "fresh_install.constraints",
    "fresh_install.integrity",
    "fresh_install.foreign_keys",
    "fresh_install.journal_mode",
    "volume.mount",
    "restart.retention",
    "recreate.retention",
]


def failing(audit: Audit) -> dict[str, str]:
    return {k: v for k, v in audit.statuses().items() if v != "passed"}


def test_the_good_compose_deployment_passes_every_check_for_both_databases(
    run_audit: Callable[..., Audit],
) -> None:
    audit = run_audit(AGENT_MEMORY / "audit.yaml")
    assert audit.code == 0, audit.stderr
    assert failing(audit) == {}
    ids = set(audit.statuses())
    for check in PER_DATABASE:
        assert {f"{check}[main]", f"{check}[vectors]"} <= ids
    assert {"fresh_install.startup", "volume.undeclared_databases"} <= ids
    assert audit.results["target"]["driver"] == "compose"
    # The per-start licence_usage row is volatile: compared by presence, and said so.
    assert "1 volatile present" in audit.check("restart.retention[main]")["summary"]
    mount = audit.check("volume.mount[vectors]")["summary"]
    assert "/app/data/vectors/index.sqlite3 is on a bind" in mount
    # The licence key is an environment value whose name looks secret.
    assert "demo-licence-key-0001" not in audit.report
    assert '"method"' not in audit.report  # the canaries' standard input is never shown


def test_a_vector_store_off_the_volume_is_named_and_the_main_database_is_not_blamed(
    run_audit: Callable[..., Audit],
) -> None:
    audit = run_audit(AGENT_MEMORY / "defects" / "second-db-off-volume.yaml")
    assert audit.code == 1, audit.stderr
    assert failing(audit) == {
        "volume.mount[vectors]": "failed",
        "recreate.retention[vectors]": "failed",
    }
    assert "/app/vectors/index.sqlite3" in audit.check("volume.mount[vectors]")["summary"]
    lost = audit.check("recreate.retention[vectors]")["summary"]
    assert "10 of 10 canary records lost" in lost
    # The canaries went with the vector store: the main database kept every row.
    assert "canary" not in audit.check("recreate.retention[main]")["summary"]


def test_tables_the_models_declare_but_a_fresh_install_lacks_are_named(
    run_audit: Callable[..., Audit],
) -> None:
    audit = run_audit(AGENT_MEMORY / "defects" / "missing-tables.yaml")
    assert audit.code == 1, audit.stderr
    assert failing(audit) == {"fresh_install.schema[main]": "failed"}
    summary = audit.check("fresh_install.schema[main]")["summary"]
    assert summary.startswith("3 of 7 tables missing: agent_teams, memory_consolidations")


def test_a_deployment_without_its_licence_is_blocked_quoting_the_log(
    run_audit: Callable[..., Audit],
) -> None:
    audit = run_audit(AGENT_MEMORY / "defects" / "licence-blocker.yaml")
    assert audit.code == 3, audit.stderr
    assert audit.results["verdict"] == "BLOCKED"
    startup = audit.check("fresh_install.startup")
    assert "last exit code 78" in startup["summary"]
    logs = "\n".join(e["content"] for e in startup["evidence"] if "log" in e["title"].lower())
    assert "licence key missing: agent-memory requires AGENT_MEMORY_LICENSE_KEY" in logs
    # Nothing else is judged on a service that never started, and nothing is failed for it.
    assert set(failing(audit).values()) == {"blocked"}

"""Several databases and SQLite files in the container layer, on real notes-app containers."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.e2e.conftest import Audit
from tests.e2e.test_demo_audits import ALL_CHECKS
from tests.helpers import NOTES_APP

pytestmark = pytest.mark.docker

# Every check but these is about one database.
NOT_PER_DATABASE = {
    "fresh_install.startup",
    "volume.undeclared_databases",
    "restart.graceful_stop",
    "restart.idempotent_init",
}
PER_DATABASE = ALL_CHECKS - NOT_PER_DATABASE
TWO_DATABASES = {
    *NOT_PER_DATABASE,
    *(f"{check}[{db}]" for check in PER_DATABASE for db in ("main", "cache")),
}


def test_two_databases_on_the_volume_pass_once_each(run_audit: Callable[..., Audit]) -> None:
    audit = run_audit(NOTES_APP / "second-db.yaml")
    assert audit.code == 0, audit.stderr
    assert audit.statuses() == dict.fromkeys(TWO_DATABASES, "passed")
    cache = audit.check("recreate.retention[cache]")
    # The canaries are the cycle's, reported once: with the main database.
    assert "canary" not in cache["summary"]
    assert "20 canary records read back" in audit.check("recreate.retention[main]")["summary"]
    volatile = next(e for e in cache["evidence"] if e["title"].startswith("Volatile tables"))
    assert "starts" in volatile["content"]
    assert "present before and after" in volatile["content"]
    assert [d["name"] for d in audit.results["target"]["databases"]] == ["main", "cache"]
    assert "### `recreate.retention[cache]`" in audit.report


def test_a_second_database_off_the_volume_fails_naming_its_file(
    run_audit: Callable[..., Audit],
) -> None:
    audit = run_audit(str(NOTES_APP / "defects" / "second-db-off-volume.yaml"))
    assert audit.code == 1
    failing = {k for k, v in audit.statuses().items() if v != "passed"}
    assert failing == {"volume.mount[cache]", "recreate.retention[cache]"}, audit.statuses()
    mount = audit.check("volume.mount[cache]")["summary"]
    assert "/var/lib/notes/cache.db was written in the container layer" in mount
    lost = audit.check("recreate.retention[cache]")["summary"]
    assert "20 rows lost from cache_entries (" in lost, lost  # by table and key, no percentage
    assert "retained" not in lost
    assert "volume.mount[main]" not in failing
    # The risk table names the database whose check failed.
    assert "| `recreate.retention[cache]` (FAIL) | Database cache (/var/lib/notes/cache.db):" in (
        audit.report
    )


def test_an_undeclared_database_in_the_layer_fails_naming_it(
    run_audit: Callable[..., Audit],
) -> None:
    audit = run_audit(str(NOTES_APP / "defects" / "stray-db.yaml"))
    assert audit.code == 1
    failing = {k for k, v in audit.statuses().items() if v != "passed"}
    assert failing == {"volume.undeclared_databases"}, audit.statuses()
    check = audit.check("volume.undeclared_databases")
    assert check["summary"].endswith("re-created: /var/lib/notes/search-index.db")
    assert "HIGH" in audit.report


def test_the_good_service_writes_no_database_in_its_layer(
    run_audit: Callable[..., Audit],
) -> None:
    audit = run_audit(NOTES_APP / "audit.yaml")
    check = audit.check("volume.undeclared_databases")
    assert check["status"] == "passed"
    assert check["summary"].startswith("no undeclared SQLite file in the container layer")

"""A real third-party service audited through its real API: a Prefect server (3.9.1).

Its canary opens a session with a CSRF token, creates a flow, then a run of it by the flow's
id, and reads the run back by its own id after each cycle. Built from local wheels
(`scripts/setup.sh wheelhouse`); skipped when they are not there.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.e2e.conftest import Audit
from tests.e2e.test_demo_audits import ALL_CHECKS
from tests.helpers import REPO

pytestmark = pytest.mark.docker

PREFECT = REPO / "fixtures" / "targets" / "prefect"


@pytest.fixture(autouse=True)
def _wheelhouse() -> None:
    if not any(PREFECT.glob("wheels/prefect-*.whl")):
        pytest.skip("the Prefect wheelhouse is missing: run scripts/setup.sh wheelhouse")


def test_the_prefect_server_passes_every_check_through_its_api(
    run_audit: Callable[..., Audit],
) -> None:
    audit = run_audit(PREFECT / "audit.yaml")
    assert audit.code == 0, audit.stderr
    assert audit.results["verdict"] == "PASS"
    assert audit.statuses() == dict.fromkeys(ALL_CHECKS, "passed")
    for check in ("restart.retention", "recreate.retention"):
        result = audit.check(check)
        assert "10 canary records read back" in result["summary"]
        written = result["evidence"][0]["content"]
        assert "POST /api/flows/ x 10, each cycle in a session opened by 1 setup steps" in written
        read_back = next(e for e in result["evidence"] if e["title"].startswith("Canary records"))
        assert read_back["content"] == "10 of 10 found"


def test_a_relative_database_url_is_one_root_cause_finding_first(
    run_audit: Callable[..., Audit],
) -> None:
    """Prefect with sqlite+aiosqlite:///prefect.db writes /app/prefect.db, in the container
    layer: the first finding names both paths, the checks that need the file are not
    evaluated, and the re-create's lost canaries fail."""
    audit = run_audit(PREFECT / "defects" / "relative-db-url.yaml")
    assert audit.code == 1, audit.stderr
    failed = [k for k, v in audit.statuses().items() if v == "failed"]
    assert failed == ["fresh_install.database", "volume.undeclared_databases", "recreate.retention"]
    root = audit.check("fresh_install.database")["summary"]
    assert root.startswith("no database at /data/prefect.db; the service wrote SQLite files at")
    assert "/app/prefect.db" in root
    assert audit.check("volume.mount")["status"] == "blocked"
    assert audit.check("recreate.retention")["summary"].startswith("10 of 10 canary records lost")

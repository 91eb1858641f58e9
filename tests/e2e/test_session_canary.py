"""A service whose API needs a login, a session cookie and a CSRF token is audited through it.

notes-app with NOTES_LOGIN=session logs everyone out on a restart: the canary's setup logs in
again before the reads, so every record is read back by the id its write returned. Without
the setup, the writes are refused and the cycles cannot be exercised: BLOCKED with the 401.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from tests.e2e.conftest import Audit
from tests.e2e.test_demo_audits import ALL_CHECKS
from tests.helpers import NOTES_APP, REPO

pytestmark = pytest.mark.docker

VARIANTS = NOTES_APP / "variants"
PASSWORD = "canary-admin-passphrase"  # the config's default for NOTES_ADMIN_PASSWORD


def test_a_session_canary_passes_every_check(run_audit: Callable[..., Audit]) -> None:
    audit = run_audit(VARIANTS / "session.yaml")
    assert audit.code == 0, audit.stderr
    assert audit.results["verdict"] == "PASS"
    assert audit.statuses() == dict.fromkeys(ALL_CHECKS, "passed")
    for check in ("restart.retention", "recreate.retention"):
        summary = audit.check(check)["summary"]
        assert "20 canary records read back" in summary
        # The worker published notes inside the cycle: changed rows, reported, none lost.
        assert re.search(r"\([1-9][0-9]* changed", summary), summary
        written = audit.check(check)["evidence"][0]["content"]
        assert written.startswith("POST /notes x 20, each cycle in a session")
        assert "opened by 2 setup steps" in written
    # The password and the session's CSRF tokens and cookies never reach an output.
    everything = json.dumps(audit.results) + audit.report + audit.stderr
    assert PASSWORD not in everything


def test_without_the_login_the_cycles_are_blocked_with_the_401(
    run_audit: Callable[..., Audit],
) -> None:
    audit = run_audit(VARIANTS / "session-no-login.yaml")
    assert audit.code == 3, audit.stderr
    assert audit.results["verdict"] == "BLOCKED"
    for check in ("restart.retention", "recreate.retention"):
        result = audit.check(check)
        assert result["status"] == "blocked"
        assert "POST /notes answered 401, expected 201" in result["summary"]
        response = next(e for e in result["evidence"] if e["title"] == "Response")
        assert response["content"].startswith('status 401\n{"error": "login required"}')


def test_a_get_only_canary_proves_nothing_so_retention_is_blocked(
    run_audit: Callable[..., Audit], tmp_path: Path
) -> None:
    """A GET-only canary "reads back" what it never wrote: never a PASS, and the verdict says
    why."""
    config = yaml.safe_load((NOTES_APP / "audit.yaml").read_text())
    config["build"]["context"] = str(NOTES_APP)
    config["expect"]["manifest"] = str(REPO / "expected" / "notes-app.yaml")
    config["canary"]["write"] = [{"method": "GET", "path": "/health", "port": 8080}]
    config["canary"]["read"] = [{"method": "GET", "path": "/health", "port": 8080}]
    path = tmp_path / "hollow.yaml"
    path.write_text(yaml.safe_dump(config))
    audit = run_audit(path)
    assert audit.code == 3, audit.stderr
    assert audit.results["verdict"] == "BLOCKED"
    for check in ("restart.retention", "recreate.retention"):
        result = audit.check(check)
        assert result["status"] == "blocked"
        assert result["summary"].startswith(
            "retention not verified: the canary writes change nothing (GET/HEAD only): "
            "reading them back proves nothing about user data"
        ), result["summary"]
    # Nor does it prove a restore (the backup suite is on in audit.yaml); the backup itself
    # is still verified.
    restore = audit.check("backup.restore")
    assert restore["status"] == "blocked"
    assert restore["summary"] == (
        "restore not verified: the canary writes change nothing (GET/HEAD only): reading them "
        "back from the restore proves nothing about user data"
    )
    others = {
        c: s
        for c, s in audit.statuses().items()
        if not c.endswith(".retention") and c != "backup.restore"
    }
    assert set(others.values()) == {"passed"}, others


def test_canary_writes_that_store_nothing_are_found_out(run_audit: Callable[..., Audit]) -> None:
    """Every canary of a preview endpoint "reads back" (200), yet none reached the database:
    the retention checks are BLOCKED with the database named, the other checks still pass."""
    audit = run_audit(VARIANTS / "canary-stores-nothing.yaml")
    assert audit.code == 3, audit.stderr
    assert audit.results["verdict"] == "BLOCKED"
    for check in ("restart.retention", "recreate.retention"):
        result = audit.check(check)
        assert result["status"] == "blocked", result["summary"]
        assert result["summary"].startswith(
            "retention not verified: nothing new was found in the database after the 5 canary "
            "writes (/data/notes.db (main)): reading them back proves nothing about user data"
        ), result["summary"]
        titles = [e["title"] for e in result["evidence"]]
        assert "Not a proof of retention: nothing new in the database after the canary writes" in (
            titles
        )
    metrics = {m["name"]: m["achieved"] for m in audit.results["metrics"]}
    assert {v for k, v in metrics.items() if "retention" in k.lower()} == {"not measured"}, metrics
    others = {c: s for c, s in audit.statuses().items() if not c.endswith(".retention")}
    assert set(others.values()) == {"passed"}, others

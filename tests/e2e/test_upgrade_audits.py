"""The upgrade suite on a real engine: the previous release given data, the current one on it.

Proven both ways: the good notes-app upgraded from its previous release (RELEASE=1) passes
every check; upgrade-drops-table (its last migration drops and re-creates notes on an
upgrade) fails exactly upgrade.retention; a current version whose migrations stop short
fails upgrade.schema; the same two ways through the compose driver (notes-app-compose).
What the previous version cannot do leaves both checks BLOCKED (a driver that cannot rehearse
an upgrade: tests/unit/test_upgrade.py). run_audit asserts that nothing is left on the engine
(the upgrade's volume, containers and compose project included) and nothing in the audit's
temp dir.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from tests.e2e.conftest import Audit, config_variant
from tests.e2e.test_demo_audits import ALL_CHECKS, BACKUP_CHECKS, only_failing
from tests.helpers import NOTES_APP, REPO

pytestmark = pytest.mark.docker

UPGRADE_CHECKS = {"upgrade.schema", "upgrade.retention"}
EVERY_CHECK = ALL_CHECKS | BACKUP_CHECKS | UPGRADE_CHECKS
PREVIOUS = {"build": {"context": str(NOTES_APP), "args": {"RELEASE": "1"}}}


def evidence(audit: Audit, check_id: str) -> dict[str, str]:
    return {e["title"]: e["content"] for e in audit.check(check_id)["evidence"]}


def metrics(audit: Audit) -> dict[str, str]:
    return {m["name"]: m["achieved"] for m in audit.results["metrics"]}


def test_the_good_service_upgrades_from_its_previous_release(
    run_audit: Callable[..., Audit],
) -> None:
    audit = run_audit(NOTES_APP / "variants" / "upgrade.yaml")
    assert audit.code == 0, audit.stderr
    assert audit.statuses() == dict.fromkeys(EVERY_CHECK, "passed")
    schema = audit.check("upgrade.schema")
    assert "--build-arg RELEASE=1" in schema["summary"]
    assert schema["summary"].endswith(
        "schema matches the manifest: 10 tables, 2 indexes, 1 view, 0 triggers"
    )
    shown = evidence(audit, "upgrade.schema")
    # The schema before (the previous release: 7 tables) and after (10), and what changed.
    assert shown["Schema of the previous version, before the upgrade"] == (
        "7 tables, 2 indexes, 1 view, 0 triggers"
    )
    assert shown["Schema after the upgrade (persistaudit snapshot)"].startswith("10 tables")
    changed = shown["What the upgrade changed (previous version -> after the upgrade)"]
    assert changed.startswith(
        "tables added: api_tokens, attachments, note_revisions\ntables dropped: (none)"
    ), changed
    assert "-previous -v " in shown["Install the previous version on a fresh volume"]
    retention = audit.check("upgrade.retention")
    assert re.fullmatch(
        r"20 canary records read back, no row lost: \d+ rows of the previous version in 7 "
        r"tables matched after the upgrade",
        retention["summary"],
    ), retention["summary"]
    got = metrics(audit)
    assert got["Canary records retained across the upgrade"] == "100.0%"
    assert got["Rows lost in the upgrade"] == "0"
    assert got["Upgrade to ready"].endswith(" s")
    assert got["Schema differences after the upgrade"] == "0"
    # The suite ran: upgrades are no longer a residual risk of this audit.
    assert "Upgrades from the previous release's database were not tested." not in audit.report
    assert "## Upgrade on existing data (`upgrade`)" in audit.report


def test_a_migration_that_drops_a_table_fails_exactly_the_retention(
    run_audit: Callable[..., Audit],
) -> None:
    audit = run_audit(NOTES_APP / "defects" / "upgrade-drops-table.yaml")
    assert audit.code == 1, audit.stderr
    assert set(audit.statuses()) == EVERY_CHECK
    only_failing(audit, {"upgrade.retention"})
    summary = audit.check("upgrade.retention")["summary"]
    assert summary.startswith(
        "20 of 20 canary records written with the previous version are missing after the upgrade; "
    ), summary
    assert "20 rows lost from notes (ids 1, 2, 3, 4, 5, ...)" in summary
    assert "40 rows lost from note_tags" in summary
    assert metrics(audit)["Rows lost in the upgrade"] == "60"
    # The schema is right: only the rows are gone.
    assert audit.check("upgrade.schema")["status"] == "passed"
    assert "| `upgrade.retention` (FAIL) | An upgrade loses user data" in audit.report


def test_a_current_version_whose_migrations_stop_short_fails_the_schema(
    run_audit: Callable[..., Audit], tmp_path: Path
) -> None:
    """missing-tables never registers the last migration: upgraded from the previous
    release, its schema lacks the same three tables (no row is lost)."""
    config = config_variant(
        tmp_path,
        NOTES_APP / "defects" / "missing-tables.yaml",
        "missing-tables",
        upgrade_from=PREVIOUS,
    )
    audit = run_audit(config)
    assert audit.code == 1, audit.stderr
    assert set(audit.statuses()) == ALL_CHECKS | UPGRADE_CHECKS
    only_failing(audit, {"fresh_install.schema", "upgrade.schema"})
    assert audit.check("upgrade.schema")["summary"] == (
        "3 of 10 tables missing: api_tokens, attachments, note_revisions"
    )


def test_a_current_version_that_does_not_start_on_the_previous_data_fails_the_schema(
    run_audit: Callable[..., Audit], tmp_path: Path
) -> None:
    """Audited as the "current" version, release 1 refuses the database release 2 migrated
    (as services refuse a downgrade): upgrade.schema fails with its log; upgrade.retention is
    not judged (BLOCKED, pointing at it)."""
    config = config_variant(
        tmp_path,
        NOTES_APP / "defects" / "missing-tables.yaml",
        "missing-tables",
        build={
            "context": str(NOTES_APP),
            "args": {"RELEASE": "1"},
            "tag": "persistaudit/notes-app-release-1:audit",
        },
        upgrade_from={
            "build": {"context": str(NOTES_APP), "tag": "persistaudit/notes-app-release-2:previous"}
        },
    )
    audit = run_audit(config)
    assert audit.code == 1, audit.stderr
    statuses = audit.statuses()
    assert {k for k, v in statuses.items() if v != "passed"} == {
        "fresh_install.schema",
        "upgrade.schema",
        "upgrade.retention",
    }, statuses
    assert statuses["upgrade.schema"] == "failed"
    assert statuses["upgrade.retention"] == "blocked"
    schema = audit.check("upgrade.schema")
    assert schema["summary"].startswith(
        "the new version did not start on the previous version's data: "
    ), schema["summary"]
    logs = evidence(audit, "upgrade.schema")["Last log lines of the new version"]
    assert "database schema version 4 is newer than this release (3)" in logs
    assert audit.check("upgrade.retention")["summary"] == (
        "not judged: the new version did not start (see upgrade.schema)"
    )


def test_a_previous_version_that_does_not_start_leaves_the_upgrade_blocked(
    run_audit: Callable[..., Audit], tmp_path: Path
) -> None:
    """The previous version (license-blocker: exits 78 without a licence key) is not the
    release under audit: both checks are BLOCKED with the reason, never failed."""
    previous = {
        "build": {
            "context": str(NOTES_APP),
            "args": {"DEFECT": "license-blocker"},
            "tag": "persistaudit/notes-app-upgrade-blocked:previous",
        }
    }
    source = NOTES_APP / "variants" / "upgrade.yaml"
    config = config_variant(tmp_path, source, "upgrade", upgrade_from=previous, suites={})
    audit = run_audit(config)
    assert audit.code == 3, audit.stderr
    expected = dict.fromkeys(ALL_CHECKS, "passed") | dict.fromkeys(UPGRADE_CHECKS, "blocked")
    assert audit.statuses() == expected
    for check_id in UPGRADE_CHECKS:
        summary = audit.check(check_id)["summary"]
        assert summary.startswith("the previous version (build of "), summary
        assert "--build-arg DEFECT=license-blocker) could not be installed: " in summary
    shown = evidence(audit, "upgrade.schema")
    assert "licence key missing" in shown["Last log lines of the previous version"]


def test_a_previous_version_that_kept_no_database_on_the_volume_leaves_the_upgrade_blocked(
    run_audit: Callable[..., Audit], tmp_path: Path
) -> None:
    """The previous version (ephemeral-db) kept its database off the volume: there was nothing
    to upgrade, and the canaries it lost are its own loss, never a finding about the current
    version (no FAIL), nor a PASS of an upgrade that did not happen."""
    previous = {
        "build": {
            "context": str(NOTES_APP),
            "args": {"DEFECT": "ephemeral-db"},
            "tag": "persistaudit/notes-app-upgrade-ephemeral:previous",
        }
    }
    source = NOTES_APP / "variants" / "upgrade.yaml"
    config = config_variant(tmp_path, source, "upgrade", upgrade_from=previous, suites={})
    audit = run_audit(config)
    assert audit.code == 3, audit.stderr
    expected = dict.fromkeys(ALL_CHECKS, "passed") | dict.fromkeys(UPGRADE_CHECKS, "blocked")
    assert audit.statuses() == expected
    for check_id in UPGRADE_CHECKS:
        assert audit.check(check_id)["summary"] == (
            "not evaluated: the previous version left no database at /data/notes.db on the "
            "volume, so there was nothing to upgrade"
        )


COMPOSE_APP = REPO / "fixtures" / "targets" / "notes-app-compose"


def compose_config(tmp_path: Path, defect: str = "") -> Path:
    """notes-app-compose's config upgraded from notes-app's previous release (RELEASE=1 of
    the audited service's build); a defect chooses DEFECT through an env file."""
    config = yaml.safe_load((COMPOSE_APP / "audit.yaml").read_text())
    config["compose"]["file"] = str(COMPOSE_APP / "compose.yaml")
    config["expect"]["manifest"] = str(REPO / "expected" / "notes-app.yaml")
    config["upgrade_from"] = PREVIOUS
    if defect:
        env = tmp_path / f"{defect}.env"
        env.write_text(f"DEFECT={defect}\n")
        config["name"] = f"notes-app-compose-{defect}"
        config["compose"]["env_files"] = [str(env)]
    path = tmp_path / "audit.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_a_compose_target_upgrades_in_a_project_of_its_own(
    run_audit: Callable[..., Audit], tmp_path: Path
) -> None:
    """The compose driver rehearses the upgrade: the model in a project of the run's own
    with the service on the previous release, then `up` with the audited image, which
    re-creates the container on the same named volume. run_audit checks that nothing of the
    upgrade's project is left behind."""
    audit = run_audit(compose_config(tmp_path), "-k", "upgrade")
    assert audit.code == 0, audit.stderr
    assert {c: audit.check(c)["status"] for c in UPGRADE_CHECKS} == dict.fromkeys(
        UPGRADE_CHECKS, "passed"
    ), audit.statuses()
    # -k upgrade deselects the others (skipped): none may fail or be blocked.
    assert not {k for k, v in audit.statuses().items() if v not in ("passed", "skipped")}
    schema = audit.check("upgrade.schema")
    assert "--build-arg RELEASE=1" in schema["summary"]
    assert schema["summary"].endswith(
        "schema matches the manifest: 10 tables, 2 indexes, 1 view, 0 triggers"
    )
    shown = evidence(audit, "upgrade.schema")
    # The previous release really ran (7 tables), and the audited image migrated it (10).
    assert shown["Schema of the previous version, before the upgrade"] == (
        "7 tables, 2 indexes, 1 view, 0 triggers"
    )
    installed = shown["Install the previous version on a fresh volume"]
    assert re.search(r"docker compose -p persistaudit-notes-app-compose-\S+-upgrade ", installed)
    assert "_notes-data; service notes on sha256:" in installed, installed
    upgraded = shown["Upgrade: the current version started on the previous version's volume"]
    assert "re-created it on the same volumes" in upgraded, upgraded
    retention = audit.check("upgrade.retention")
    assert re.fullmatch(
        r"20 canary records read back, no row lost: \d+ rows of the previous version in 7 "
        r"tables matched after the upgrade",
        retention["summary"],
    ), retention["summary"]
    assert metrics(audit)["Rows lost in the upgrade"] == "0"


def test_a_compose_migration_that_drops_a_table_fails_exactly_the_retention(
    run_audit: Callable[..., Audit], tmp_path: Path
) -> None:
    """The same with DEFECT=upgrade-drops-table (env file): only upgrade.retention fails."""
    audit = run_audit(compose_config(tmp_path, "upgrade-drops-table"), "-k", "upgrade")
    assert audit.code == 1, audit.stderr
    statuses = audit.statuses()
    assert set(statuses) >= UPGRADE_CHECKS
    # -k upgrade deselects the others (skipped): only upgrade.retention may be anything else.
    assert {k: v for k, v in statuses.items() if v not in ("passed", "skipped")} == {
        "upgrade.retention": "failed"
    }, statuses
    summary = audit.check("upgrade.retention")["summary"]
    assert summary.startswith(
        "20 of 20 canary records written with the previous version are missing after the upgrade; "
    ), summary
    assert "20 rows lost from notes (ids 1, 2, 3, 4, 5, ...)" in summary
    assert audit.check("upgrade.schema")["status"] == "passed"

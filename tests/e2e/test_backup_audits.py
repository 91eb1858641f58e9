"""The backup suite on a real engine: an online backup, verified, restored and read back.

Proven both ways: the good notes-app passes with persistaudit's own backup (the backup API)
and with its own backup command; the bad-backup defect (the command copies notes.db without
its WAL) fails exactly backup.restore. run_audit asserts that nothing is left on the engine
(the restore's volume and container included) and nothing in the audit's temp dir.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from tests.e2e.conftest import Audit
from tests.e2e.test_demo_audits import ALL_CHECKS, BACKUP_CHECKS
from tests.helpers import NOTES_APP, REPO

pytestmark = pytest.mark.docker

EVERY_CHECK = ALL_CHECKS | BACKUP_CHECKS
COMMAND = "python3 /app/notes_app.py backup /data/notes.backup.db"


def evidence(audit: Audit, check_id: str) -> dict[str, str]:
    return {e["title"]: e["content"] for e in audit.check(check_id)["evidence"]}


def metrics(audit: Audit) -> dict[str, str]:
    return {m["name"]: m["achieved"] for m in audit.results["metrics"]}


def assert_recorded(audit: Audit) -> str:
    """The backup's digest and integrity are in the results; returns the SHA-256."""
    shown = evidence(audit, "backup.integrity")
    match = re.search(r"SHA-256 ([0-9a-f]{64})\nsize (\d+) bytes", shown["Backup file"])
    assert match, shown["Backup file"]
    assert shown["PRAGMA integrity_check (backup)"] == "ok"
    assert int(match.group(2)) > 0
    assert match.group(1)[:16] in audit.check("backup.integrity")["summary"]
    assert match.group(1) in audit.report  # the report names the bytes that were verified
    return match.group(1)


def test_the_api_backup_of_the_good_service_restores_every_record(
    run_audit: Callable[..., Audit],
) -> None:
    audit = run_audit(NOTES_APP / "audit.yaml")
    assert audit.code == 0, audit.stderr
    assert audit.statuses() == dict.fromkeys(EVERY_CHECK, "passed")
    assert_recorded(audit)
    shown = evidence(audit, "backup.integrity")
    assert "SQLite online backup API" in shown["Backup method"]
    restore = audit.check("backup.restore")
    assert restore["summary"].startswith("restored and ready in ")
    assert "20 canary records read back" in restore["summary"]
    found = evidence(audit, "backup.restore")
    read_back = next(v for k, v in found.items() if k.startswith("Canary records read back"))
    assert read_back.startswith("20 of 20 found")
    assert "-restore" in found["Restore into a fresh volume"]
    got = metrics(audit)
    assert got["Backup size"].endswith("KiB")
    assert got["Backup duration"].endswith(" s")
    assert got["Restore to ready"].endswith(" s")
    assert int(got["Rows restored"]) > 20
    # The suite ran: backups are no longer a residual risk of this audit.
    assert "Backups and restores were not verified." not in audit.report


def test_the_services_own_backup_command_passes(run_audit: Callable[..., Audit]) -> None:
    audit = run_audit(NOTES_APP / "variants" / "backup-command.yaml")
    assert audit.code == 0, audit.stderr
    assert audit.statuses() == dict.fromkeys(EVERY_CHECK, "passed")
    assert_recorded(audit)
    shown = evidence(audit, "backup.integrity")
    assert COMMAND in shown["Backup method"]
    assert "# exit 0 after" in shown["The service's backup command"]
    assert "20 canary records read back" in audit.check("backup.restore")["summary"]


def test_a_backup_without_the_wal_fails_exactly_the_restore(
    run_audit: Callable[..., Audit],
) -> None:
    audit = run_audit(NOTES_APP / "defects" / "bad-backup.yaml")
    assert audit.code == 1, audit.stderr
    statuses = audit.statuses()
    assert {k for k, v in statuses.items() if v != "passed"} == {"backup.restore"}, statuses
    assert statuses["backup.restore"] == "failed"
    assert_recorded(audit)  # the main file alone is a sound database
    summary = audit.check("backup.restore")["summary"]
    assert summary.startswith(
        "20 of 20 canary records written before the backup are missing from the restore; "
        "the backup misses "
    ), summary
    assert re.search(
        r"the backup misses \d+ of \d+ rows the live database held before it$", summary
    )
    assert "| `backup.restore` (FAIL) |" in audit.report


COMPOSE_APP = REPO / "fixtures" / "targets" / "notes-app-compose"


def compose_config(tmp_path: Path, defect: str = "", **backup: object) -> Path:
    """notes-app-compose's config with the backup suite on (DEFECT through an env file)."""
    config = yaml.safe_load((COMPOSE_APP / "audit.yaml").read_text())
    config["compose"]["file"] = str(COMPOSE_APP / "compose.yaml")
    config["expect"]["manifest"] = str(REPO / "expected" / "notes-app.yaml")
    config["suites"] = {"backup": {"enabled": True, **backup}}
    if defect:
        env = tmp_path / f"{defect}.env"
        env.write_text(f"DEFECT={defect}\n")
        config["name"] = f"notes-app-compose-{defect}"
        config["compose"]["env_files"] = [str(env)]
    path = tmp_path / "audit.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_a_compose_target_restores_in_a_project_of_its_own(
    run_audit: Callable[..., Audit], tmp_path: Path
) -> None:
    """The compose driver restores too: the same model in a project of the run's own (fresh
    volumes, ephemeral ports), seeded with the backup before its first start; every canary
    is read back. run_audit checks that the restore's project left nothing behind."""
    audit = run_audit(compose_config(tmp_path), "-k", "startup or backup")
    assert audit.code == 0, audit.stderr
    assert audit.check("backup.integrity")["status"] == "passed"
    restore = audit.check("backup.restore")
    assert restore["status"] == "passed", restore["summary"]
    assert restore["summary"].startswith("restored and ready in ")
    assert "20 canary records read back" in restore["summary"]
    steps = evidence(audit, "backup.restore")["Restore into a fresh volume"]
    assert re.search(r"docker compose -p persistaudit-\S+-restore .*up --no-start", steps), steps
    assert "/data/notes.db" in steps


def test_a_compose_backup_without_the_wal_fails_exactly_the_restore(
    run_audit: Callable[..., Audit], tmp_path: Path
) -> None:
    """bad-backup through compose: the service's own backup misses the WAL, and the restore
    through the compose driver finds the canaries missing (FAIL, not BLOCKED)."""
    config = compose_config(
        tmp_path,
        "bad-backup",
        command=["python3", "/app/notes_app.py", "backup", "/data/notes.backup.db"],
        output="/data/notes.backup.db",
        timeout=60,
    )
    # The restart checkpoints the schema into the main file: without it, the main file alone
    # would lack the tables (backup.integrity's own finding, and no restore to rehearse).
    audit = run_audit(config, "-k", "startup or restart and retention or backup")
    assert audit.code == 1, audit.stderr
    integrity = audit.check("backup.integrity")
    assert integrity["status"] == "passed", integrity["summary"]
    restore = audit.check("backup.restore")
    assert restore["status"] == "failed", restore["summary"]
    assert restore["summary"].startswith(
        "20 of 20 canary records written before the backup are missing from the restore"
    ), restore["summary"]


NON_ROOT_DOCKERFILE = """\
FROM persistaudit/base-python:bookworm
ENV NOTES_DB_PATH=/data/notes.db NOTES_PORT=8080 PYTHONUNBUFFERED=1
WORKDIR /app
COPY notes_app.py /app/notes_app.py
RUN mkdir /data && chown 1000:1000 /data
USER 1000:1000
CMD ["python3", "/app/notes_app.py"]
"""


def test_a_service_running_as_a_non_root_user_writes_its_restored_database(
    run_audit: Callable[..., Audit], tmp_path: Path
) -> None:
    """The good notes-app as uid 1000 (its folder is its own): the restored database keeps
    the live file's owner and mode, so the service writes to it after the restore, as it did
    before. Root's 0644 would make it fail for a reason that is persistaudit's."""
    compose = {
        "services": {
            "notes": {
                "build": {"context": str(NOTES_APP), "dockerfile_inline": NON_ROOT_DOCKERFILE},
                "ports": ["8080:8080"],
                "volumes": ["notes-data:/data"],
            }
        },
        "volumes": {"notes-data": {}},
    }
    (tmp_path / "compose.yaml").write_text(yaml.safe_dump(compose))
    path = compose_config(tmp_path)
    config = yaml.safe_load(path.read_text())
    config["name"] = "notes-app-compose-non-root"
    config["compose"]["file"] = str(tmp_path / "compose.yaml")
    # Read back after a write through the restored service: only a writable restore passes.
    config["canary"]["read"].insert(
        0, {**config["canary"]["write"][0], "json": {"title": "after-restore-{marker}"}}
    )
    path.write_text(yaml.safe_dump(config))
    audit = run_audit(path, "-k", "startup or backup")
    assert audit.results, audit.stderr
    restore = audit.check("backup.restore")
    assert restore["status"] == "passed", restore["summary"]
    assert audit.code == 0, audit.stderr

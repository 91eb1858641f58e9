"""Every check is proven both ways: it passes on notes-app and fails on the defect built for it."""

from __future__ import annotations

import shlex
import subprocess
from collections.abc import Callable
from pathlib import Path

import docker
import pytest
import yaml

from persistaudit import engine
from tests.e2e.conftest import Audit
from tests.helpers import NOTES_APP

pytestmark = pytest.mark.docker

ALL_CHECKS = {
    "fresh_install.startup",
    "fresh_install.database",
    "fresh_install.schema",
    "fresh_install.constraints",
    "fresh_install.integrity",
    "fresh_install.foreign_keys",
    "fresh_install.journal_mode",
    "volume.mount",
    "volume.undeclared_databases",
    "restart.retention",
    "restart.graceful_stop",
    "restart.idempotent_init",
    "recreate.retention",
}
# The bundled notes-app config switches the backup suite on (off by default elsewhere).
BACKUP_CHECKS = {"backup.integrity", "backup.restore"}


def defect(name: str) -> str:
    return str(NOTES_APP / "defects" / f"{name}.yaml")


def test_good_service_passes_every_check(run_audit: Callable[..., Audit]) -> None:
    audit = run_audit(NOTES_APP / "audit.yaml")
    assert audit.code == 0, audit.stderr
    assert audit.results["verdict"] == "PASS"
    assert audit.statuses() == dict.fromkeys(ALL_CHECKS | BACKUP_CHECKS, "passed")
    metrics = {m["name"]: m for m in audit.results["metrics"]}
    assert metrics["Data retention after restart"]["achieved"] == "100.0%"
    assert metrics["Data retention after re-create"]["achieved"] == "100.0%"
    assert metrics["Journal mode"]["achieved"] == "wal"
    assert metrics["Volume mount type"]["achieved"] == "named volume"
    assert metrics["Tables expected / present / missing"]["achieved"] == "10 / 10 / 0"
    assert metrics["Schema differences"]["achieved"] == "0"
    assert metrics["Constraints enforced"]["achieved"] == "17 of 17"
    # Each cycle reads back its own canaries (20), not the restart's too.
    assert "20 canary records read back" in audit.check("recreate.retention")["summary"]
    assert "| Data retention after re-create | 100% | 100.0% | PASS |" in audit.report
    assert audit.results["target"]["image_id"].startswith("sha256:")


def test_the_reports_docker_run_starts_the_audited_service_again(
    run_audit: Callable[..., Audit],
) -> None:
    """Reproducible: the container's settings are the engine's, and the report's command,
    run by hand on a volume of its own, starts the same service with its database there."""
    audit = run_audit(NOTES_APP / "audit.yaml")
    target, reproduce = audit.results["target"], audit.results["reproduce"]
    box = reproduce["container"]
    assert box["image_id"] == target["image_id"]
    assert box["env"] == {"NOTES_DB_PATH": "/data/notes.db"}  # the image's own are named only
    assert "PATH" in box["image_env"]
    assert box["command"] == ["python3", "/app/notes_app.py"]  # the image's CMD
    assert [m["destination"] for m in box["mounts"]] == ["/data"]
    assert box["mounts"][0]["source"] == target["volume"]
    assert box["ports"][0].startswith("8080/tcp published on 127.0.0.1:")
    assert [s["request"] for s in reproduce["canary"]] == [
        "POST :8080/notes",
        "GET :8080/notes?title={marker}",
    ]
    assert "## Reproducing this audit" in audit.report
    assert reproduce["run_command"] in audit.report

    words = shlex.split(reproduce["run_command"])
    volume = f"persistaudit-reproduce-{engine.new_run_id()}"
    words[words.index(f"{target['volume']}:/data")] = f"{volume}:/data"
    labels = engine.labels(engine.new_run_id(), "reproduce")
    flags = [w for k, v in labels.items() for w in ("--label", f"{k}={v}")]
    client = docker.from_env()
    client.volumes.create(volume, labels=labels)
    started = subprocess.run(
        [*words[:3], *flags, *words[3:]], capture_output=True, text=True, timeout=60
    )
    container = started.stdout.strip()
    try:
        assert started.returncode == 0, started.stderr
        probe = (
            "import time, urllib.request\n"
            "for _ in range(200):\n"
            "    try: urllib.request.urlopen('http://127.0.0.1:8080/health'); break\n"
            "    except OSError: time.sleep(0.1)\n"
            "import os; print(os.path.exists('/data/notes.db'))"
        )
        code, out = client.containers.get(container).exec_run(["python3", "-c", probe])
        assert (code, out.decode().strip()) == (0, "True")
    finally:
        if container:
            client.containers.get(container).remove(force=True)
        client.volumes.get(volume).remove(force=True)


def test_progress_names_checks_and_elapsed_time(run_audit: Callable[..., Audit]) -> None:
    stderr = run_audit(NOTES_APP / "audit.yaml").stderr
    assert "restart.retention" in stderr
    assert "PASSED" in stderr
    assert "s] docker restart persistaudit-notes-app-" in stderr


def only_failing(audit: Audit, failing: set[str]) -> None:
    statuses = audit.statuses()
    assert {k for k, v in statuses.items() if v != "passed"} == failing, statuses
    assert all(statuses[k] == "failed" for k in failing)


def test_missing_tables_fails_schema_naming_them(run_audit: Callable[..., Audit]) -> None:
    audit = run_audit(defect("missing-tables"))
    assert audit.code == 1
    only_failing(audit, {"fresh_install.schema"})
    summary = audit.check("fresh_install.schema")["summary"]
    assert summary == "3 of 10 tables missing: api_tokens, attachments, note_revisions"
    assert (
        "| Tables expected / present / missing | 10 / 10 / 0 | 10 / 7 / 3 | FAIL |" in audit.report
    )


def test_ephemeral_db_fails_mount_and_recreate(run_audit: Callable[..., Audit]) -> None:
    audit = run_audit(defect("ephemeral-db"))
    assert audit.code == 1
    only_failing(audit, {"volume.mount", "recreate.retention"})
    assert "/app/state is on the container layer" in audit.check("volume.mount")["summary"]
    recreate = audit.check("recreate.retention")["summary"]
    assert "20 of 20 canary records lost" in recreate
    assert "rows lost from notes (ids 1, 2, 3, 4, 5, ...)" in recreate


def test_a_database_written_elsewhere_is_one_root_cause_finding_first(
    run_audit: Callable[..., Audit],
) -> None:
    """The config says /data/notes.db, the service writes /app/state/notes.db: one finding
    names both paths; the checks that need the file are not evaluated (never seven failures
    with the same text, never a volume.mount pass for a file that does not exist)."""
    audit = run_audit(defect("db-elsewhere"))
    assert audit.code == 1
    statuses = audit.statuses()
    failed = [k for k, v in statuses.items() if v == "failed"]
    assert failed == [
        "fresh_install.database",
        "volume.undeclared_databases",
        "recreate.retention",
    ]
    root = audit.check("fresh_install.database")["summary"]
    assert root.startswith("no database at /data/notes.db; the service wrote SQLite files at")
    assert "/app/state/notes.db" in root
    for check in ("fresh_install.schema", "fresh_install.integrity", "volume.mount"):
        assert statuses[check] == "blocked"
        assert audit.check(check)["summary"] == (
            "not evaluated: no database at /data/notes.db (see fresh_install.database)"
        )
    recreate = audit.check("recreate.retention")["summary"]
    assert recreate.startswith("20 of 20 canary records lost; rows not compared")
    assert "0.0%" not in audit.check("restart.retention")["summary"]


def test_license_blocker_is_blocked_and_quotes_its_log(run_audit: Callable[..., Audit]) -> None:
    audit = run_audit(defect("license-blocker"))
    assert audit.code == 3
    assert audit.results["verdict"] == "BLOCKED"
    startup = audit.check("fresh_install.startup")
    assert startup["status"] == "blocked"
    assert "restarts in a loop" in startup["summary"]
    assert "last exit code 78" in startup["summary"]
    logs = next(e for e in startup["evidence"] if e["kind"] == "log")["content"]
    assert "licence key missing: notes-app requires NOTES_LICENSE_KEY" in logs
    assert "licence key missing: notes-app requires NOTES_LICENSE_KEY" in audit.report
    statuses = audit.statuses()
    assert statuses.pop("volume.mount") == "passed"  # readable even from a looping container
    assert set(statuses.values()) == {"blocked"}


def test_no_wal_fails_journal_mode(run_audit: Callable[..., Audit]) -> None:
    audit = run_audit(defect("no-wal"))
    assert audit.code == 1
    only_failing(audit, {"fresh_install.journal_mode"})
    assert (
        audit.check("fresh_install.journal_mode")["summary"]
        == "journal mode is delete, expected wal"
    )


def test_no_check_fails_schema_and_constraints(run_audit: Callable[..., Audit]) -> None:
    audit = run_audit(defect("no-check"))
    assert audit.code == 1
    only_failing(audit, {"fresh_install.schema", "fresh_install.constraints"})
    check = "notes: CHECK(status in ('draft', 'published', 'archived'))"
    assert (
        audit.check("fresh_install.schema")["summary"] == f"1 difference(s): missing check {check}"
    )
    constraints = audit.check("fresh_install.constraints")["summary"]
    assert f"{check}: not enforced" in constraints
    assert (
        "| missing | notes: CHECK(status in ('draft', 'published', 'archived')) |" in audit.report
    )


def test_bad_json_fails_constraints_only(run_audit: Callable[..., Audit]) -> None:
    audit = run_audit(defect("bad-json"))
    assert audit.code == 1
    only_failing(audit, {"fresh_install.constraints"})
    summary = audit.check("fresh_install.constraints")["summary"]
    assert summary == "1 of 17 probes failed: notes.meta: failed (1 row(s) hold invalid JSON)"


def test_fk_orphans_fails_foreign_keys(run_audit: Callable[..., Audit]) -> None:
    audit = run_audit(defect("fk-orphans"))
    assert audit.code == 1
    only_failing(audit, {"fresh_install.foreign_keys"})
    check = audit.check("fresh_install.foreign_keys")
    assert check["summary"] == "1 foreign key violation(s): notebooks -> users"
    assert "notebooks rowid 1 -> users" in check["evidence"][-1]["content"]


def test_ignores_sigterm_fails_graceful_stop_only(run_audit: Callable[..., Audit]) -> None:
    """Every restart still "works" (the engine kills it after the timeout): only the stop
    itself shows it, with exit 137 after the configured 3 s."""
    audit = run_audit(defect("ignores-sigterm"))
    assert audit.code == 1, audit.stderr
    only_failing(audit, {"restart.graceful_stop"})
    summary = audit.check("restart.graceful_stop")["summary"]
    assert summary.startswith("the service ignored SIGTERM: docker stop killed it after the 3 s")
    assert "(exit 137," in summary
    metrics = {m["name"]: m for m in audit.results["metrics"]}
    assert metrics["Exit code on docker stop"]["achieved"] == "137"
    assert metrics["Exit code on docker stop"]["status"] == "failed"


def test_a_good_stop_and_idempotent_starts_pass_with_their_facts(
    run_audit: Callable[..., Audit],
) -> None:
    audit = run_audit(NOTES_APP / "audit.yaml")
    stop = audit.check("restart.graceful_stop")
    assert stop["status"] == "passed"
    assert stop["summary"].startswith("exited by itself ")
    assert "with code 0 (timeout 10 s)" in stop["summary"]
    starts = audit.check("restart.idempotent_init")
    assert starts["status"] == "passed"
    assert "migration records unchanged (schema_migrations)" in starts["summary"]
    metrics = {m["name"]: m["achieved"] for m in audit.results["metrics"]}
    assert metrics["Exit code on docker stop"] == "0"
    assert metrics["Starts on an initialised volume"] == "2"


def test_non_idempotent_init_fails_idempotent_init_only(run_audit: Callable[..., Audit]) -> None:
    """Each start after the first fails on tables that exist, logs it and carries on: the
    data survives (restart and re-create pass), but the new error lines are the finding."""
    audit = run_audit(defect("non-idempotent-init"))
    assert audit.code == 1, audit.stderr
    only_failing(audit, {"restart.idempotent_init"})
    summary = audit.check("restart.idempotent_init")["summary"]
    assert summary.startswith("start 1 on the initialised volume logged ")
    assert "ERROR init: migration 1 (users and notebooks) failed, skipped" in summary
    errors = next(
        e
        for e in audit.check("restart.idempotent_init")["evidence"]
        if e["title"] == "Start 1: error lines the fresh install did not log"
    )
    assert "table users already exists" in errors["content"]


def test_a_switched_off_check_is_not_run(run_audit: Callable[..., Audit], tmp_path: Path) -> None:
    config = yaml.safe_load(Path(defect("ignores-sigterm")).read_text())
    config["build"]["context"] = str(NOTES_APP)
    config["expect"]["manifest"] = str(NOTES_APP.parent.parent.parent / "expected/notes-app.yaml")
    config["suites"] = {"graceful_stop": {"enabled": False}, "idempotent_init": {"starts": 1}}
    path = tmp_path / "off.yaml"
    path.write_text(yaml.safe_dump(config))
    audit = run_audit(path)
    assert audit.code == 0, audit.stderr  # the defect is not looked at: no finding
    assert "restart.graceful_stop" not in audit.statuses()
    assert audit.check("restart.idempotent_init")["summary"].startswith("1 start(s)")

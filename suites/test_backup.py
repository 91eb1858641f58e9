"""Backup: an online backup is sound, and a restore of it holds every record written before it."""

from __future__ import annotations

import pytest

from persistaudit import backup_stage
from persistaudit.audit import TargetAudit
from persistaudit.config import DatabaseEntry, format_size
from persistaudit.plugin import CheckRecorder
from persistaudit.retention import Retention


def _run(
    audit: TargetAudit, check: CheckRecorder, database: DatabaseEntry
) -> tuple[backup_stage.BackupRun, backup_stage.DatabaseBackup]:
    """The stage's result and this database's backup; BLOCKED when there is none to judge."""
    __tracebackhide__ = True
    run = audit.stage("backup")
    if not isinstance(run, backup_stage.BackupRun):
        raise RuntimeError("stage 'backup' must return a BackupRun")
    check.extend(run.actions)
    if run.blocked:
        check.extend(run.evidence)
        raise check.blocked(run.blocked)
    result = run.backups.get(database.name)
    if result is None:
        spec = audit.config.suites.backup
        pytest.skip(
            f"not tested: the backup command backs up database {spec.database or '(the first)'} "
            f"only, not {database.name}"
        )
    return run, result


def _metric(audit: TargetAudit, name: str, database: DatabaseEntry) -> str:
    return audit.config.metric_name(name, database.name)


@pytest.mark.check("backup.integrity")
def test_backup_integrity(
    persistaudit_started: TargetAudit,
    persistaudit_check: CheckRecorder,
    persistaudit_database: DatabaseEntry,
) -> None:
    """Passes when the backup is a SQLite file whose integrity_check is ok, with the live schema."""
    audit, check = persistaudit_started, persistaudit_check
    _, result = _run(audit, check, persistaudit_database)
    check.add("Backup method", result.method or "(none)", "command")
    duration = "not measured" if result.duration_s is None else f"{result.duration_s:.2f} s"
    check.metric(_metric(audit, "Backup duration", persistaudit_database), "-", duration, True)
    if result.digest is not None:
        check.add(
            "Backup file",
            f"SHA-256 {result.digest.sha256}\nsize {result.digest.size} bytes "
            f"({format_size(result.digest.size)})\n(the file itself is not kept: evidence "
            "files are text; the digest names the verified bytes)",
            "output",
        )
        check.metric(
            _metric(audit, "Backup size", persistaudit_database),
            "-",
            format_size(result.digest.size),
            True,
        )
    if result.error:
        check.summary = result.error
        pytest.fail(check.summary, pytrace=False)
    if result.blocked:
        raise check.blocked(f"backup not verified: {result.blocked}")
    v = result.verification
    if v is None:
        raise RuntimeError("the backup stage made a backup without verifying it")
    if v.error:
        if v.integrity:
            check.add("PRAGMA integrity_check (backup)", "\n".join(v.integrity), "command")
        check.summary = f"the backup is not a readable SQLite database: {v.error}"
        pytest.fail(check.summary, pytrace=False)
    if v.blocked:
        raise check.blocked(f"backup not verified: {v.blocked}")
    assert v.facts is not None
    check.add("PRAGMA integrity_check (backup)", "\n".join(v.facts.integrity), "command")
    problems = []
    if not v.facts.integrity_ok:
        problems.append(f"integrity_check of the backup: {v.facts.integrity[0]}")
    if v.schema_changes:
        check.add("Schema differences, live database -> backup", "\n".join(v.schema_changes))
        shown = "; ".join(v.schema_changes[:5])
        problems.append(f"the backup's schema differs from the live database's: {shown}")
    if problems:
        check.summary = "; ".join(problems)
        pytest.fail(check.summary, pytrace=False)
    assert result.digest is not None
    check.summary = (
        f"integrity ok, live schema ({len(v.facts.tables)} tables); "
        f"SHA-256 {result.digest.sha256[:16]}..., {format_size(result.digest.size)}"
    )


@pytest.mark.check("backup.restore")
def test_backup_restore(
    persistaudit_started: TargetAudit,
    persistaudit_check: CheckRecorder,
    persistaudit_database: DatabaseEntry,
) -> None:
    """Passes when the service starts on the restored backup and reads back every canary and
    row written before the backup."""
    audit, check, database = persistaudit_started, persistaudit_check, persistaudit_database
    run, result = _run(audit, check, database)
    check.extend(run.restore_actions)
    ready = "not measured" if run.restore_ready_s is None else f"{run.restore_ready_s:.1f} s"
    check.metric(_metric(audit, "Restore to ready", database), "ready", ready, bool(run.read_back))
    integrity = audit.config.check_id("backup.integrity", database.name)
    v = result.verification
    if result.blocked or (v is not None and v.blocked):
        raise check.blocked(f"restore not rehearsed: the backup was not verified (see {integrity})")
    if result.error or v is None or not v.sound:
        raise check.blocked(f"restore not rehearsed: no sound backup to restore (see {integrity})")
    if run.restore_blocked:
        raise check.blocked(f"restore not rehearsed: {run.restore_blocked}")
    if run.restore_failure:
        if run.restore_logs:
            check.add("Last log lines of the restored service", "\n".join(run.restore_logs), "log")
        check.summary = run.restore_failure
        pytest.fail(check.summary, pytrace=False)
    found: list[str] = []
    unverified: list[str] = []
    if result.missed is not None:
        check.add("Rows of the live database, matched in the backup", _rows(result.missed), "table")
        unverified += result.missed.unverified
        if result.missed.rows_lost:
            found.append(
                f"the backup misses {result.missed.rows_lost} of {result.missed.rows_before} rows "
                "the live database held before it"
            )
    rb = run.read_back
    if database.name == run.canary_database:
        if rb is None:
            raise RuntimeError("the restore ran without reading the canaries back")
        first = f"\nfirst missing: {rb.missing[0].marker}: {rb.first_failure}" if rb.missing else ""
        check.add(
            f"Canary records read back from the restored service ({run.restore_container})",
            f"{len(rb.found)} of {len(run.canaries)} found{first}",
            "command",
        )
        if audit.config.canary.changes_nothing:
            unverified.append(
                "the canary writes change nothing (GET/HEAD only): reading them back from the "
                "restore proves nothing about user data"
            )
        if rb.missing:
            found.insert(
                0,
                f"{len(rb.missing)} of {len(run.canaries)} canary records written before the "
                "backup are missing from the restore",
            )
    restored = result.restored
    if restored is not None and restored.error:
        (unverified if restored.blocked else found).append(f"restored database: {restored.error}")
    rows = result.restored_rows
    if rows is not None:
        check.add("Rows of the backup, matched in the restored database", _rows(rows), "table")
        unverified += rows.unverified
        found += [f"backup -> restore: {text}" for text in rows.findings()]
    elif restored is not None and not restored.error:
        unverified.append("the restored database could not be compared with the backup")
    restored_count = "not measured" if rows is None else str(rows.rows_retained)
    check.metric(_metric(audit, "Rows restored", database), "all", restored_count, not found)
    if found:
        check.summary = "; ".join(found)
        pytest.fail(check.summary, pytrace=False)
    if unverified:
        raise check.blocked("restore not verified: " + "; ".join(unverified))
    assert rows is not None
    canaries = (
        f"{len(rb.found)} canary records read back, "
        if rb is not None and database.name == run.canary_database
        else ""
    )
    check.summary = (
        f"restored and ready in {ready}: {canaries}{rows.rows_retained} of {rows.rows_before} "
        f"rows of the backup restored in {len(rows.tables)} tables"
    )


def _rows(ret: Retention) -> str:
    lines = [f"{'table':<24} {'rows':>8} {'kept':>8} {'lost':>6}"]
    for t in ret.tables:
        lines.append(f"{t.name:<24} {t.rows_before:>8} {t.rows_before - t.lost:>8} {t.lost:>6}")
    lines += [f"{name:<24} GONE" for name in ret.missing_tables]
    return "\n".join(lines)

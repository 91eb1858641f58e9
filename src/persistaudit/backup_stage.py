"""The backup stage: an online backup of the live service, verified, then restored and read.

The stage writes its own canaries, snapshots every database (paused), and takes the backup:
with SQLite's backup API from each snapshot, or with the service's own backup command
(suites.backup.command) for one database, whose output is copied out like a snapshot. Each
backup is recorded by SHA-256 and size, checked for integrity and for the live schema, and
compared row by row with the live snapshot (what the backup misses). The service is then
started on a fresh volume holding the backups, the canaries are read back through it, and
its databases are compared with the backups (rows restored).
"""

from __future__ import annotations

import shlex
import time
from dataclasses import dataclass, field

from persistaudit import backup, retention, stages
from persistaudit.audit import DatabaseState, TargetAudit
from persistaudit.canary import Canary, ReadBack
from persistaudit.config import DatabaseEntry
from persistaudit.exceptions import (
    CanaryError,
    LimitExceeded,
    PersistauditError,
    TargetBlocked,
    TargetRemoved,
)
from persistaudit.findings import Evidence
from persistaudit.inspect import DatabaseFacts, inspect_database
from persistaudit.runtime.restore import Restored
from persistaudit.snapshot import Snapshot, Wanted, take_snapshots
from persistaudit.sqlite_files import database_files

EXEC_OUTPUT = 2000  # characters of the backup command's output kept as evidence (its end)


@dataclass
class DatabaseBackup:
    """One database's backup: how it was taken, what it is, and what its restore held."""

    database: str
    method: str = ""
    snapshot: Snapshot | None = None  # the backup file's host copy
    digest: backup.Digest | None = None
    duration_s: float | None = None
    verification: backup.Verification | None = None
    missed: retention.Retention | None = None  # live snapshot -> backup
    restored: DatabaseState | None = None
    restored_rows: retention.Retention | None = None  # backup -> restored database
    error: str = ""  # no backup was made, or it is not a database: a finding
    blocked: str = ""  # it could not be made or judged (a limit): no finding


@dataclass
class BackupRun:
    """What the backup checks read: per backed-up database, and the restore they share."""

    route: str  # "api" or "command"
    canaries: list[Canary] = field(default_factory=list)
    backups: dict[str, DatabaseBackup] = field(default_factory=dict)
    live: dict[str, DatabaseState] = field(default_factory=dict)
    canary_database: str = ""  # the one whose restore check reports the canaries
    restore_ready_s: float | None = None
    restore_container: str = ""
    read_back: ReadBack | None = None
    restore_failure: str = ""  # the restored service did not start: a finding
    restore_blocked: str = ""  # the restore could not be rehearsed: no finding
    restore_logs: list[str] = field(default_factory=list)
    blocked: str = ""  # the stage could not be exercised at all
    actions: list[Evidence] = field(default_factory=list)  # up to the backup
    restore_actions: list[Evidence] = field(default_factory=list)
    evidence: list[Evidence] = field(default_factory=list)


def backed_up(audit: TargetAudit) -> list[DatabaseEntry]:
    """The databases the backup covers: every one (API), or suites.backup.database (command)."""
    spec = audit.config.suites.backup
    declared = audit.config.declared_databases
    if spec.command is None:
        return list(declared)
    name = spec.database or declared[0].name
    return [d for d in declared if d.name == name]


def run_backup(audit: TargetAudit) -> BackupRun:
    spec = audit.config.suites.backup
    run = BackupRun("command" if spec.command else "api")
    entries = backed_up(audit)
    run.canary_database = entries[0].name
    audit.log(f"backup: writing {audit.config.canary.records} canary records through the service")
    try:
        run.canaries = audit.canaries.write(
            audit.runtime.container, audit.run_id, stages.get("backup").canary_start
        )
    except CanaryError as exc:
        run.blocked = f"the backup could not be exercised: {exc}"
        audit.log(f"BLOCKED: {run.blocked}")
        return run
    new = run.canaries
    run.actions.append(
        Evidence(
            f"Write {len(new)} canary records",
            f"{audit.canaries.describe(new)} (markers {new[0].marker} .. {new[-1].marker})",
            "command",
        )
    )
    folder = audit.workdir / "backup"
    folder.mkdir(exist_ok=True)
    for entry in entries:
        run.backups[entry.name] = DatabaseBackup(entry.name)
    try:
        # Inside the try: a container removed at this moment is BLOCKED like one removed later.
        run.live = audit.snapshot("before-backup")
        if spec.command is None:
            for entry in entries:
                _api_backup(audit, run, entry)
        else:
            _command_backup(audit, run, entries[0])
        for entry in entries:
            _verify(audit, run, entry)
        _restore(audit, run, entries)
    except TargetRemoved:
        removed = audit.removed("the backup", settle=True)
        run.blocked = str(removed) if removed else "the target was removed during the backup"
    return run


def _api_backup(audit: TargetAudit, run: BackupRun, entry: DatabaseEntry) -> None:
    result = run.backups[entry.name]
    live = run.live[entry.name]
    result.method = backup.API_METHOD
    if live.snapshot is None:  # the snapshot checks report why (a missing file, a limit)
        result.blocked = f"no snapshot of the live database to back up: {live.error}"
        return
    dest = audit.workdir / "backup" / f"{entry.name}.backup.db"
    try:
        result.duration_s = backup.api_backup(live.snapshot.path, dest, audit.limits_of(entry.name))
    except LimitExceeded as exc:
        result.blocked = str(exc)
        return
    except PersistauditError as exc:
        result.error = str(exc)
        return
    result.digest = backup.digest_of(dest)
    files = {p.name: p.stat().st_size for p in database_files(dest)}
    result.snapshot = Snapshot(dest, entry.path, files, live.snapshot.pause_ms)
    audit.log(f"backup: {entry.name} backed up with the backup API ({result.digest.size} bytes)")


def _command_backup(audit: TargetAudit, run: BackupRun, entry: DatabaseEntry) -> None:
    spec = audit.config.suites.backup
    assert spec.command is not None  # the config validates both
    assert spec.output is not None
    result = run.backups[entry.name]
    shown = shlex.join(spec.command)
    result.method = f"the service's own backup command: {shown} (writes {spec.output})"
    audit.log(f"backup: docker exec {audit.runtime.container.name} {shown}")
    started = time.monotonic()
    code, output = audit.runtime.container.exec(list(spec.command), timeout=spec.timeout)
    result.duration_s = time.monotonic() - started
    tail = output[-EXEC_OUTPUT:]
    run.actions.append(
        Evidence(
            "The service's backup command",
            f"$ docker exec {audit.runtime.container.name} {shown}\n# exit {code} after "
            f"{result.duration_s:.1f} s\n{tail}".rstrip(),
            "command",
        )
    )
    if code == 124:
        result.blocked = f"the backup command did not finish within {spec.timeout:g} s ({shown})"
        return
    if code != 0:
        last = tail.strip().splitlines()[-1:] or ["(no output)"]
        result.error = f"the backup command exited {code}: {last[0]} ({shown})"
        return
    copy = take_snapshots(
        audit.runtime.container,
        [Wanted(spec.output, audit.workdir / "backup" / "command", entry.max_size)],
    )[0]
    if isinstance(copy, LimitExceeded):
        result.blocked = str(copy)
        return
    if isinstance(copy, PersistauditError):
        result.error = f"the backup command wrote no usable file at {spec.output}: {copy}"
        return
    result.snapshot = copy
    result.digest = backup.digest_of(copy.path)
    audit.log(f"backup: copied {spec.output} out ({result.digest.size} bytes)")


def _verify(audit: TargetAudit, run: BackupRun, entry: DatabaseEntry) -> None:
    result = run.backups[entry.name]
    live = run.live[entry.name]
    if result.snapshot is None:
        return
    limits = audit.limits_of(entry.name)
    result.verification = backup.verify(result.snapshot.path, live.schema, entry.name, limits)
    facts = result.verification.facts
    if live.facts is not None and live.snapshot is not None and facts is not None:
        result.missed = _compare(audit, entry, live.snapshot, result.snapshot, live.facts, facts)


def _compare(
    audit: TargetAudit,
    entry: DatabaseEntry,
    before: Snapshot,
    after: Snapshot,
    before_facts: DatabaseFacts,
    after_facts: DatabaseFacts,
) -> retention.Retention | None:
    """Rows of before matched in after (None when they could not be compared)."""
    try:
        return retention.compare_copies(
            before.path,
            after.path,
            before_facts,
            after_facts,
            retention.TableKinds(entry.volatile, entry.append_only, entry.immutable),
            audit.limits_of(entry.name),
        )
    except PersistauditError:
        return None


def _restore(audit: TargetAudit, run: BackupRun, entries: list[DatabaseEntry]) -> None:
    sound = {
        e.name: run.backups[e.name]
        for e in entries
        if (v := run.backups[e.name].verification) is not None and v.sound
    }
    unsound = [e.name for e in entries if e.name not in sound]
    if unsound:
        run.restore_blocked = (
            f"no sound backup of database {', '.join(unsound)} to restore with the others"
        )
        return
    files = {}
    owners = {}  # each restored file gets the live database file's owner and mode
    for entry in entries:
        snap = sound[entry.name].snapshot
        assert snap is not None
        live = run.live[entry.name].snapshot
        for path in database_files(snap.path):
            where = entry.path + path.name[len(snap.path.name) :]
            files[where] = path
            if live is not None and live.owner is not None:
                owners[where] = live.owner
    scratch = audit.workdir / "backup"
    restored: Restored | None = None
    try:
        try:
            restored = audit.runtime.restore(files, scratch, owners)
        except TargetBlocked as exc:
            run.restore_failure = f"the service did not start on the restored backup: {exc}"
            run.restore_logs = list(exc.evidence.get("logs", []))  # type: ignore[call-overload]
            return
        except TargetRemoved:
            raise
        except PersistauditError as exc:  # RestoreUnsupported, RestoreError: not rehearsed
            run.restore_blocked = str(exc)
            audit.log(f"BLOCKED: {exc}")
            return
        assert restored.container is not None
        run.restore_ready_s = restored.ready_s
        run.restore_container = restored.name
        run.restore_actions.append(
            Evidence(
                "Restore into a fresh volume",
                f"{restored.steps}\n# ready after {restored.ready_s or 0:.1f} s",
                "command",
            )
        )
        audit.log(f"backup: reading {len(run.canaries)} canary records back from the restore")
        run.read_back = audit.canaries.read(restored.container, audit.run_id, run.canaries)
        copies = take_snapshots(
            restored.container,
            [
                Wanted(e.path, audit.workdir / "backup" / f"restored-{e.name}", e.max_size)
                for e in entries
            ],
        )
        for entry, copy in zip(entries, copies, strict=True):
            result = sound[entry.name]
            state = DatabaseState("restored")
            if isinstance(copy, PersistauditError):
                state.error, state.blocked = str(copy), isinstance(copy, LimitExceeded)
            else:
                state.snapshot = copy
                try:
                    state.facts = inspect_database(copy.path, audit.limits_of(entry.name))
                except PersistauditError as exc:
                    state.error, state.blocked = str(exc), isinstance(exc, LimitExceeded)
            result.restored = state
            verification = result.verification
            backed = verification.facts if verification is not None else None
            if state.facts and state.snapshot and result.snapshot and backed is not None:
                result.restored_rows = _compare(
                    audit, entry, result.snapshot, state.snapshot, backed, state.facts
                )
    finally:
        if restored is not None:
            removed = restored.close()
            if removed:
                audit.log("removed " + ", ".join(removed))


stages.register("backup", run_backup)

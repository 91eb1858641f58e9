"""Fresh install: the target starts on an empty volume and creates the promised database.

Every check but startup is about one database: with several, one result each (`check[name]`).
"""

from __future__ import annotations

import pytest
from _schema import match_manifest

from persistaudit import constraints
from persistaudit.audit import DatabaseState, TargetAudit
from persistaudit.config import DatabaseEntry
from persistaudit.exceptions import LimitExceeded
from persistaudit.inspect import DatabaseFacts
from persistaudit.layer_files import LayerScan
from persistaudit.plugin import CheckRecorder

STATE_FIELDS = {
    "status": "status",
    "exit_code": "exit code",
    "restart_count": "restart count",
    "waited_for": "waited for",
    "engine_error": "engine error",
    "health": "health",
}


def fresh_state(audit: TargetAudit, database: DatabaseEntry) -> DatabaseState:
    return audit.fresh.databases[database.name]


def not_evaluated_without_the_file(
    audit: TargetAudit, check: CheckRecorder, database: DatabaseEntry
) -> None:
    """BLOCKED when there is no file at the database's path: that is one finding, the root
    cause's (fresh_install.database), not one failure per check with the same text."""
    __tracebackhide__ = True
    if fresh_state(audit, database).missing:
        root = audit.config.check_id("fresh_install.database", database.name)
        raise check.blocked(f"not evaluated: no database at {database.path} (see {root})")


def fresh_facts(
    audit: TargetAudit,
    check: CheckRecorder,
    database: DatabaseEntry,
    *,
    show_copy: bool = False,
) -> DatabaseFacts:
    """The fresh install's facts of one database; the check fails if it could not be read.

    It is BLOCKED instead when a limit (database.max_size, database.query_timeout) kept the
    database from being copied or read: that is no finding about the database.
    """
    __tracebackhide__ = True
    not_evaluated_without_the_file(audit, check, database)
    state = fresh_state(audit, database)
    if state.snapshot is not None and show_copy:
        files = ", ".join(f"{name} ({size} bytes)" for name, size in state.snapshot.files.items())
        check.add(
            "Database copied out of the paused container",
            f"$ docker pause; docker cp {state.snapshot.container_path}"
            f"[{','.join(state.snapshot.companions)}]; "
            f"docker unpause\n# {files}; paused {state.snapshot.pause_ms:.0f} ms",
            "command",
        )
    if state.facts is None:
        if state.blocked:
            raise check.blocked(f"the database could not be examined: {state.error}")
        check.summary = f"no database to inspect: {state.error}"
        pytest.fail(check.summary, pytrace=False)
    return state.facts


@pytest.mark.check("fresh_install.startup")
def test_startup(persistaudit_audit: TargetAudit, persistaudit_check: CheckRecorder) -> None:
    fresh = persistaudit_audit.fresh
    persistaudit_check.extend(fresh.actions)
    if fresh.logs:
        persistaudit_check.attach(
            "startup.log",
            "\n".join(fresh.logs) + "\n",
            f"Container log at the fresh install ({len(fresh.logs)} lines)",
            "\n".join(fresh.logs[:15]) + ("\n..." if len(fresh.logs) > 15 else ""),
        )
    if fresh.blocked is not None:
        ev = fresh.blocked.evidence
        state = [
            f"{label}: {ev[key]}"
            for key, label in STATE_FIELDS.items()
            if ev.get(key) not in (None, "")
        ]
        persistaudit_check.add("Container state", "\n".join(state))
        logs = ev.get("logs") or []
        persistaudit_check.add(
            f"Last {len(logs)} log lines (docker logs --tail 40)",  # type: ignore[arg-type]
            "\n".join(logs) or "(no output)",  # type: ignore[arg-type]
            "log",
        )
        probes = ev.get("health_log") or []
        if probes:
            persistaudit_check.add(
                f"Last {len(probes)} healthcheck results (State.Health.Log)",  # type: ignore[arg-type]
                "\n".join(probes),  # type: ignore[arg-type]
                "log",
            )
        persistaudit_check.metric(
            "Container start", "ready", f"BLOCKED ({fresh.blocked.reason})", False
        )
        raise persistaudit_check.blocked(str(fresh.blocked))
    persistaudit_check.metric("Container start", "ready", f"ready in {fresh.ready_s:.1f} s", True)
    persistaudit_check.summary = f"ready on an empty volume in {fresh.ready_s:.1f} s"


@pytest.mark.check("fresh_install.database")
def test_database(
    persistaudit_started: TargetAudit,
    persistaudit_check: CheckRecorder,
    persistaudit_database: DatabaseEntry,
) -> None:
    """Passes when a SQLite database is at the configured path after the fresh install."""
    audit, check, database = persistaudit_started, persistaudit_check, persistaudit_database
    state = fresh_state(audit, database)
    if state.missing:
        layer = audit.fresh.layer
        written = layer.databases if isinstance(layer, LayerScan) else []
        check.add(
            f"SQLite files the service wrote in the container layer ({layer.listed_by}; "
            "each file's header read)"
            if isinstance(layer, LayerScan)
            else "SQLite files the service wrote in the container layer",
            "\n".join(written) if written else (layer if isinstance(layer, str) else "(none)"),
            "command",
        )
        elsewhere = (
            f"; the service wrote SQLite files at {', '.join(written)} (in the container "
            "layer: lost when the container is re-created)"
            if written
            else "; no SQLite file was written in the container layer either (look on the "
            "mounts, or at the service's path setting)"
        )
        check.metric("Database file at the configured path", "present", "absent", False)
        check.summary = f"no database at {database.path}{elsewhere}"
        pytest.fail(check.summary, pytrace=False)
    if state.snapshot is None:
        if state.blocked:
            raise check.blocked(f"the database could not be copied: {state.error}")
        check.metric("Database file at the configured path", "present", "unreadable", False)
        check.summary = f"{database.path} could not be copied out: {state.error}"
        pytest.fail(check.summary, pytrace=False)
    files = ", ".join(f"{name} ({size} bytes)" for name, size in state.snapshot.files.items())
    if state.facts is None and state.blocked:
        raise check.blocked(f"the database could not be examined: {state.error}")
    if state.facts is None:
        check.metric("Database file at the configured path", "SQLite", "not SQLite", False)
        check.summary = f"{database.path} is not a readable SQLite database: {state.error}"
        pytest.fail(check.summary, pytrace=False)
    check.metric("Database file at the configured path", "present", "present", True)
    check.summary = f"{database.path} is a SQLite database: {files}"


@pytest.mark.check("fresh_install.schema")
def test_schema(
    persistaudit_started: TargetAudit,
    persistaudit_check: CheckRecorder,
    persistaudit_database: DatabaseEntry,
) -> None:
    fresh_facts(persistaudit_started, persistaudit_check, persistaudit_database, show_copy=True)
    state = fresh_state(persistaudit_started, persistaudit_database)
    actual = state.schema
    if actual is None:
        if state.blocked:
            raise persistaudit_check.blocked(f"the schema could not be read: {state.error}")
        if not state.error:  # not an assert: a bug of ours is an ERROR, never a FAIL
            raise RuntimeError("database facts but no schema, and no reason why")
        persistaudit_check.summary = f"the schema could not be read: {state.error}"
        pytest.fail(persistaudit_check.summary, pytrace=False)
    expected = persistaudit_started.manifest_of(persistaudit_database.name)
    several = persistaudit_started.config.per_database_ids
    match_manifest(
        persistaudit_check,
        expected,
        actual,
        f"fresh-schema-{persistaudit_database.name}.yaml" if several else "fresh-schema.yaml",
        "Schema of the fresh install (persistaudit snapshot)",
    )


@pytest.mark.check("fresh_install.constraints")
def test_constraints(
    persistaudit_started: TargetAudit,
    persistaudit_check: CheckRecorder,
    persistaudit_database: DatabaseEntry,
) -> None:
    fresh_facts(persistaudit_started, persistaudit_check, persistaudit_database)
    snapshot = fresh_state(persistaudit_started, persistaudit_database).snapshot
    if snapshot is None:  # not an assert: a bug of ours is an ERROR, never a FAIL
        raise RuntimeError("database facts without the snapshot they came from")
    try:
        probes = constraints.probe(
            snapshot.path,
            persistaudit_started.manifest_of(persistaudit_database.name),
            persistaudit_started.limits_of(persistaudit_database.name),
        )
    except LimitExceeded as exc:
        raise persistaudit_check.blocked(f"the constraints could not be probed: {exc}") from None
    persistaudit_check.table(
        "Constraint probes on a throw-away copy (PRAGMA foreign_keys=ON)",
        ["Kind", "Constraint", "Outcome", "Detail"],
        [[p.kind, p.target, p.outcome, p.detail] for p in probes],
    )
    failed = [p for p in probes if p.failed]
    proven = [p for p in probes if p.outcome in ("enforced", "ok")]
    inconclusive = [p for p in probes if p.outcome == "inconclusive"]
    persistaudit_check.metric(
        "Constraints enforced",
        "all",
        f"{len(proven)} of {len(probes)}"
        + (f" ({len(inconclusive)} inconclusive)" if inconclusive else ""),
        not failed,
    )
    if failed:
        persistaudit_check.summary = f"{len(failed)} of {len(probes)} probes failed: " + "; ".join(
            f"{p.target}: {p.outcome} ({p.detail})" for p in failed[:4]
        )
        pytest.fail(persistaudit_check.summary, pytrace=False)
    stopped = [p for p in probes if p.stopped]
    if stopped:  # not a pass: part of what was to be proven was never tried
        raise persistaudit_check.blocked(
            f"{len(stopped)} of {len(probes)} probes stopped by a limit: "
            + "; ".join(f"{p.target}: {p.detail}" for p in stopped[:4])
        )
    persistaudit_check.summary = (
        f"{len(proven)} of {len(probes)} constraints, views and JSON columns proven"
        + (f"; {len(inconclusive)} inconclusive" if inconclusive else "")
    )


@pytest.mark.check("fresh_install.integrity")
def test_integrity(
    persistaudit_started: TargetAudit,
    persistaudit_check: CheckRecorder,
    persistaudit_database: DatabaseEntry,
) -> None:
    facts = fresh_facts(persistaudit_started, persistaudit_check, persistaudit_database)
    if facts.integrity_error:
        persistaudit_check.add("PRAGMA integrity_check", facts.integrity_error, "command")
        raise persistaudit_check.blocked(f"integrity not verified: {facts.integrity_error}")
    result = "\n".join(facts.integrity)
    persistaudit_check.add("PRAGMA integrity_check", result, "command")
    persistaudit_check.metric("Database integrity", "ok", facts.integrity[0], facts.integrity_ok)
    persistaudit_check.summary = (
        "integrity_check: ok"
        if facts.integrity_ok
        else f"integrity_check reports {len(facts.integrity)} problem(s): {facts.integrity[0]}"
    )
    assert facts.integrity_ok, persistaudit_check.summary


@pytest.mark.check("fresh_install.foreign_keys")
def test_foreign_keys(
    persistaudit_started: TargetAudit,
    persistaudit_check: CheckRecorder,
    persistaudit_database: DatabaseEntry,
) -> None:
    facts = fresh_facts(persistaudit_started, persistaudit_check, persistaudit_database)
    if facts.foreign_key_error:
        persistaudit_check.add("PRAGMA foreign_key_check", facts.foreign_key_error, "command")
        raise persistaudit_check.blocked(f"foreign keys not verified: {facts.foreign_key_error}")
    rows = facts.foreign_key_violations
    total = facts.foreign_key_violations_total
    shown = [f"{v.table} rowid {v.rowid} -> {v.parent} (fk {v.fk_index})" for v in rows]
    if total > len(rows):
        shown.append(f"... and {total - len(rows)} more")
    persistaudit_check.add("PRAGMA foreign_key_check", "\n".join(shown) or "(no rows)", "command")
    persistaudit_check.metric("Foreign key violations", "0", str(total), not rows)
    if rows:
        tables = sorted({f"{v.table} -> {v.parent}" for v in rows})
        persistaudit_check.summary = f"{total} foreign key violation(s): {', '.join(tables)}"
    else:
        persistaudit_check.summary = "foreign_key_check: no violations"
    assert not rows, persistaudit_check.summary


@pytest.mark.check("fresh_install.journal_mode")
def test_journal_mode(
    persistaudit_started: TargetAudit,
    persistaudit_check: CheckRecorder,
    persistaudit_database: DatabaseEntry,
) -> None:
    facts = fresh_facts(persistaudit_started, persistaudit_check, persistaudit_database)
    expected = persistaudit_database.journal_mode
    header = {1: "rollback journal", 2: "WAL"}.get(facts.header_write_version, "unknown")
    persistaudit_check.add(
        "PRAGMA journal_mode",
        f"{facts.journal_mode}\n# file header byte 18 = {facts.header_write_version} ({header})",
        "command",
    )
    ok = facts.journal_mode == expected
    persistaudit_check.metric("Journal mode", expected, facts.journal_mode, ok)
    persistaudit_check.summary = (
        f"journal mode is {facts.journal_mode}"
        if ok
        else f"journal mode is {facts.journal_mode}, expected {expected}"
    )
    assert ok, persistaudit_check.summary

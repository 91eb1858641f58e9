"""Upgrade: the current version starts on the previous version's data, migrates it to the
current manifest, and keeps every record written with the previous version."""

from __future__ import annotations

import pytest
from _retention import rows_table
from _schema import describe_schema, match_manifest

from persistaudit import upgrade
from persistaudit.audit import TargetAudit
from persistaudit.config import DatabaseEntry
from persistaudit.diff import diff
from persistaudit.display import printable
from persistaudit.manifest import Manifest, dump_manifest
from persistaudit.plugin import CheckRecorder


def _run(audit: TargetAudit, check: CheckRecorder) -> upgrade.UpgradeRun:
    """The stage's result, its steps as evidence; BLOCKED when it could not be rehearsed."""
    __tracebackhide__ = True
    run = audit.stage("upgrade")
    if not isinstance(run, upgrade.UpgradeRun):
        raise RuntimeError("stage 'upgrade' must return an UpgradeRun")
    check.add("Previous version (upgrade_from)", run.previous)
    check.extend(run.actions)
    if run.blocked:
        check.extend(run.evidence)
        raise check.blocked(run.blocked)
    return run


def _previous_database(
    run: upgrade.UpgradeRun, check: CheckRecorder, database: DatabaseEntry
) -> None:
    """BLOCKED when the previous version left no database at the path on the volume: there
    was nothing to upgrade, and what it lost is no finding about the release under audit."""
    __tracebackhide__ = True
    before = run.before.get(database.name)
    if before is not None and before.missing:
        raise check.blocked(
            f"not evaluated: the previous version left no database at {database.path} on the "
            "volume, so there was nothing to upgrade"
        )


@pytest.mark.check("upgrade.schema")
def test_upgrade_schema(
    persistaudit_started: TargetAudit,
    persistaudit_check: CheckRecorder,
    persistaudit_database: DatabaseEntry,
) -> None:
    """Passes when the current version starts on the previous version's volume and its schema
    then matches the current manifest exactly (the fresh install's comparison)."""
    audit, check, database = persistaudit_started, persistaudit_check, persistaudit_database
    run = _run(audit, check)
    ready = "not measured" if run.ready_s is None else f"{run.ready_s:.1f} s"
    check.metric(
        audit.config.metric_name("Upgrade to ready", database.name), "ready", ready, not run.failure
    )
    if run.failure:
        if run.logs:
            check.add("Last log lines of the new version", "\n".join(run.logs), "log")
        check.summary = run.failure
        pytest.fail(check.summary, pytrace=False)
    _previous_database(run, check, database)
    before, after = run.before.get(database.name), run.after.get(database.name)
    if before is None or after is None:
        raise RuntimeError("the upgrade ended without its snapshots")
    several = audit.config.per_database_ids
    suffix = f"-{database.name}" if several else ""
    if before.schema is not None:
        check.attach(
            f"upgrade-schema-before{suffix}.yaml",
            dump_manifest(before.schema),
            "Schema of the previous version, before the upgrade",
            describe_schema(before.schema),
        )
    else:
        check.add("Schema of the previous version", f"not read: {before.error}")
    if after.schema is None:
        if after.blocked:
            raise check.blocked(f"the schema after the upgrade could not be read: {after.error}")
        check.summary = f"the schema after the upgrade could not be read: {after.error}"
        pytest.fail(check.summary, pytrace=False)
    if before.schema is not None:
        check.add(
            "What the upgrade changed (previous version -> after the upgrade)",
            _changes(before.schema, after.schema),
        )
    match_manifest(
        check,
        audit.manifest_of(database.name),
        after.schema,
        f"upgrade-schema-after{suffix}.yaml",
        "Schema after the upgrade (persistaudit snapshot)",
        " after the upgrade" + (f" [{database.name}]" if several else ""),
    )
    check.summary = f"upgraded from {run.previous}, ready in {ready}: {check.summary}"


@pytest.mark.check("upgrade.retention")
def test_upgrade_retention(
    persistaudit_started: TargetAudit,
    persistaudit_check: CheckRecorder,
    persistaudit_database: DatabaseEntry,
) -> None:
    """Passes when every canary record written with the previous version is read back through
    the current one, and no row of the previous version's database was lost."""
    audit, check, database = persistaudit_started, persistaudit_check, persistaudit_database
    run = _run(audit, check)
    if run.failure:
        see = audit.config.check_id("upgrade.schema", database.name)
        raise check.blocked(f"not judged: the new version did not start (see {see})")
    _previous_database(run, check, database)
    before, after = run.before.get(database.name), run.after.get(database.name)
    if before is None or after is None or run.read_back is None:
        raise RuntimeError("the upgrade ended without its snapshots or read-back")
    found: list[str] = []
    unverified: list[str] = []
    if before.error:  # the previous version's database: not the release under audit
        unverified.append(f"the previous version's database: {before.error}")
    if after.error:
        (unverified if after.blocked else found).append(f"after the upgrade: {after.error}")
    rb = run.read_back
    canaries = database.name == audit.config.declared_databases[0].name
    if canaries:
        first = f"\nfirst missing: {rb.missing[0].marker}: {rb.first_failure}" if rb.missing else ""
        check.add(
            "Canary records written with the previous version, read back through the new one",
            f"{len(rb.found)} of {len(run.canaries)} found{first}",
            "command",
        )
        check.metric(
            "Canary records retained across the upgrade",
            "100%",
            f"{rb.percent:.1f}%",
            not rb.missing,
        )
        if rb.missing:
            found.append(
                f"{len(rb.missing)} of {len(run.canaries)} canary records written with the "
                "previous version are missing after the upgrade"
            )
        if audit.config.canary.changes_nothing:
            unverified.append(
                "the canary writes change nothing (GET/HEAD only): reading them back proves "
                "nothing about user data"
            )
    ret = run.retention.get(database.name)
    if ret is not None:
        check.add(
            "Rows of the previous version's database, matched after the upgrade",
            rows_table(ret),
            "table",
        )
        unverified += ret.unverified
        found += ret.findings()
    elif not before.error and not after.error:
        unverified.append("the rows before and after the upgrade could not be compared")
    lost = "not measured" if ret is None else str(ret.rows_lost)
    check.metric(
        audit.config.metric_name("Rows lost in the upgrade", database.name),
        "0",
        lost,
        ret is not None and not ret.findings(),
    )
    if found:
        check.summary = "; ".join(found)
        pytest.fail(check.summary, pytrace=False)
    if unverified:
        raise check.blocked("retention not verified: " + "; ".join(unverified))
    assert ret is not None
    read = f"{len(rb.found)} canary records read back, " if canaries else ""
    check.summary = (
        f"{read}no row lost: {ret.rows_before} rows of the previous version in "
        f"{len(ret.tables)} tables matched after the upgrade"
    )


def _changes(before: Manifest, after: Manifest) -> str:
    """The tables the upgrade added and dropped, then every other difference."""
    added = sorted(set(after.tables) - set(before.tables))
    dropped = sorted(set(before.tables) - set(after.tables))
    lines = [
        printable(f"tables added: {', '.join(added) or '(none)'}"),
        printable(f"tables dropped: {', '.join(dropped) or '(none)'}"),
    ]
    for d in diff(before, after):  # before as the "expected" side: missing = dropped
        if d.object == "table" and d.kind != "changed":
            continue
        word = {"missing": "dropped", "unexpected": "added"}.get(d.kind)
        lines.append(printable(f"{word} {d.object} {d.name}") if word else d.describe())
    return "\n".join(lines)

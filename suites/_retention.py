"""Shared by the restart and re-create suites: evidence and verdict of one cycle, per database."""

from __future__ import annotations

import pytest

from persistaudit.audit import Cycle, TargetAudit
from persistaudit.config import DatabaseEntry
from persistaudit.diff import diff
from persistaudit.plugin import CheckRecorder
from persistaudit.retention import ROWS, Retention, measured


def reports_canaries(audit: TargetAudit, database: DatabaseEntry, cycle: Cycle) -> bool:
    """Whether this database's result reports the cycle's canary read-back.

    The canaries belong to the cycle, so one result says it: when canaries were lost, that of
    the first database that must persist and lost rows (where they went); otherwise the first
    database that must persist. A database that kept every row is never blamed for them.
    """
    declared = audit.config.declared_databases
    persisting = [d for d in declared if d.persist] or declared[:1]

    def lost_rows(entry: DatabaseEntry) -> bool:
        ret = cycle.retention.get(entry.name)
        return ret is not None and (bool(ret.missing_tables) or ret.rows_lost > 0)

    losers = [d for d in persisting if lost_rows(d)]
    missing = cycle.read_back is not None and cycle.read_back.missing
    first = losers[0] if missing and losers else persisting[0]
    return database.name == first.name


def judge(
    cycle: Cycle,
    check: CheckRecorder,
    metric: str,
    audit: TargetAudit,
    database: DatabaseEntry,
) -> None:
    """Record a cycle's evidence and metric for one database; fail if a canary or a row was
    lost (or changed where the table's kind forbids it) or integrity is not ok.

    A cycle that could not be exercised or judged (a canary write refused before it, the
    target removed by something else) is BLOCKED: it proves neither loss nor retention.
    What a limit (size, time) kept from being read is unverified: BLOCKED, unless a definite
    loss was found anyway. A database declared `persist: false` may be lost: its loss is
    shown as evidence, not a finding.
    """
    __tracebackhide__ = True
    metric = audit.config.metric_name(metric, database.name)

    check.extend(cycle.actions)
    if cycle.blocked:
        check.extend(cycle.evidence)
        check.metric(metric, "100%", "not measured", False)
        check.summary = cycle.blocked
        raise check.blocked(cycle.blocked)
    if cycle.failure:
        if cycle.logs:
            check.add("Last log lines", "\n".join(cycle.logs), "log")
        check.metric(metric, "100%", "not measured", False)
        check.summary = cycle.failure
        pytest.fail(check.summary, pytrace=False)
    before, after = cycle.before.get(database.name), cycle.after.get(database.name)
    if before is None or after is None or cycle.read_back is None:
        # Not an assert: a broken invariant is a bug of ours (ERROR), never a FAIL.
        raise RuntimeError(f"the {cycle.name} cycle ended without its snapshots or read-back")
    found: list[tuple[str, bool]] = []  # (finding, is it data loss), in the order found
    unverified = []
    for state, label in ((before, "before"), (after, "after")):
        if state.error:
            if state.blocked:
                unverified.append(f"snapshot {state.label}: {state.error}")
            else:
                found.append((f"snapshot {state.label}: {state.error}", label == "after"))
    rb = cycle.read_back
    canaries = reports_canaries(audit, database, cycle)
    if canaries:
        first = f"\nfirst missing: {rb.missing[0].marker}: {rb.first_failure}" if rb.missing else ""
        check.add(
            "Canary records read back through the service",
            f"{len(rb.found)} of {len(rb.found) + len(rb.missing)} found{first}",
            "command",
        )
        if rb.missing:
            found.append((f"{len(rb.missing)} of {len(cycle.canaries)} canary records lost", True))
    fresh = audit.fresh.databases.get(database.name)
    if fresh is not None and fresh.missing:
        # No file at the path from the start: the rows cannot be compared (one root-cause
        # finding, fresh_install.database), but lost canaries are still lost.
        root = audit.config.check_id("fresh_install.database", database.name)
        why = f"rows not compared: no database at {database.path} (see {root})"
        if canaries and rb.missing:
            check.metric(metric, "100%", f"{rb.percent:.1f}% of canaries", False)
            check.summary = f"{len(rb.missing)} of {len(cycle.canaries)} canary records lost; {why}"
            pytest.fail(check.summary, pytrace=False)
        check.metric(metric, "100%", "not measured", False)
        read = f"; {len(rb.found)} canary records read back" if canaries else ""
        raise check.blocked(why + read)
    ret = cycle.retention.get(database.name)
    if ret is not None:
        check.add(
            "Rows per table before and after, matched by identity",
            rows_table(ret),
            "table",
        )
        if ret.by_digest:
            check.add(
                "Tables compared by row digests (no identity to match rows by)",
                "\n".join(
                    f"{t.name}: {t.note or 'compared by content digest'}; a changed row counts "
                    "as one lost and one added"
                    for t in ret.by_digest
                ),
            )
        if database.volatile:
            check.add(
                "Volatile tables, compared by presence (not content or row count)",
                "\n".join(
                    f"{name:<24} "
                    + (
                        "present before and after"
                        if name in ret.by_presence
                        else "GONE after the cycle"
                        if name in ret.missing_tables
                        else "not present before the cycle"
                    )
                    for name in database.volatile
                ),
                "table",
            )
        unverified += ret.unverified
        found += [(text, True) for text in ret.findings()]
    facts = after.facts
    if facts is not None:
        check.add(
            "PRAGMA integrity_check (after)",
            facts.integrity_error or "\n".join(facts.integrity),
            "command",
        )
        if facts.integrity_error:
            unverified.append(f"after the cycle: {facts.integrity_error}")
        elif not facts.integrity_ok:
            found.append((f"integrity_check after the cycle: {facts.integrity[0]}", False))
    if before.schema is not None and after.schema is not None:
        changes = diff(before.schema, after.schema)
        if changes:
            shown = "; ".join(d.describe() for d in changes[:5])
            found.append((f"schema changed across the {cycle.name}: {shown}", True))
    # A database that need not persist may lose its data: shown, but no finding.
    lost = [text for text, loss in found if loss and not database.persist]
    problems = [text for text, loss in found if not loss or database.persist]
    if lost:
        check.add(
            "Not a data-loss finding: the config declares this database persist: false",
            f"{database.path} ({database.name}) is a cache the service may lose; across the "
            f"{cycle.name}: " + "; ".join(lost),
        )
    # Canary writes that proved nothing: their read-back vouches for no user data, so the
    # cycle's retention is not verified (unless a definite loss was found anyway).
    hollow = cycle.hollow if canaries else ""
    if hollow:
        rows = (
            f" ({ret.rows_before} rows in {len(ret.tables)} tables matched, none lost)"
            if ret is not None and not problems
            else ""
        )
        unverified.insert(0, f"{hollow}: reading them back proves nothing about user data{rows}")
    ok = not problems and not unverified
    achieved = measured(rb.percent if canaries else None, ret)
    check.metric(metric, "100%", "not measured" if hollow and not problems else achieved, ok)
    if problems:
        check.summary = "; ".join(problems)
        if hollow:
            check.summary += f" ({hollow})"
        pytest.fail(check.summary, pytrace=False)
    if unverified:
        raise check.blocked("retention not verified: " + "; ".join(unverified))
    if lost:  # persist: false
        check.summary = (
            f"persist: false: not a data-loss finding; across the {cycle.name}: " + "; ".join(lost)
        )
        return
    if ret is None:
        raise RuntimeError(f"the {cycle.name} cycle passed without a retention comparison")
    volatile = f", {len(ret.by_presence)} volatile present" if ret.by_presence else ""
    read_back = f"{len(rb.found)} canary records read back, " if canaries else ""
    changed = sum(t.changed for t in ret.tables)
    added = sum(t.added for t in ret.tables)
    check.summary = (
        f"{read_back}no row lost: {ret.rows_before} rows in {len(ret.tables)} tables "
        f"matched ({changed} changed, {added} added){volatile}, integrity ok"
    )


def rows_table(ret: Retention) -> str:
    """The evidence table: per table, its identity, counts and sample keys of lost rows.

    A table declared append_only or immutable has its kind after its name.
    """
    if not ret.tables:
        return "(no tables compared)"
    names = [
        t.name + (f" [{t.kind.replace('_', '-')}]" if t.kind != ROWS else "") for t in ret.tables
    ]
    identities = ["(table gone)" if t.gone else t.identity for t in ret.tables]
    wn = max(len("table"), *map(len, names))
    wi = max(len("identity"), *map(len, identities))
    lines = [
        f"{'table':<{wn}}  {'identity':<{wi}}  {'before':>7} {'after':>7} {'lost':>7} "
        f"{'changed':>7} {'added':>7}  sample lost keys"
    ]
    for t, name, identity in zip(ret.tables, names, identities, strict=True):
        more = " ..." if t.lost > len(t.lost_keys) else ""
        keys = "; ".join(t.lost_keys) + more if t.lost_keys else ""
        lines.append(
            f"{name:<{wn}}  {identity:<{wi}}  {t.rows_before:>7} {t.rows_after:>7} "
            f"{t.lost:>7} {t.changed:>7} {t.added:>7}  {keys}".rstrip()
        )
    return "\n".join(lines)

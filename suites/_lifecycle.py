"""Verdicts of the restart suite's lifecycle checks: graceful stop and idempotent start."""

from __future__ import annotations

import pytest
from _retention import rows_table

from persistaudit.audit import TargetAudit
from persistaudit.diff import diff
from persistaudit.graceful_stop import KILLED, TERMINATED, GracefulStop
from persistaudit.idempotent_init import IdempotentInit
from persistaudit.plugin import CheckRecorder

SHOWN_ERRORS = 10  # new error lines quoted per start


def judge_stop(stop: GracefulStop, check: CheckRecorder) -> None:
    """PASS when docker stop ended the service by itself within the timeout: exit 0, or 143
    (SIGTERM's default action: at once, though no shutdown code ran). FAIL when the engine had
    to kill it (137, or still running at the timeout) or its shutdown failed (another code)."""
    __tracebackhide__ = True
    check.extend(stop.actions)
    if stop.blocked:
        check.metric("Stop time", f"< {stop.timeout:g} s", "not measured", False)
        raise check.blocked(f"graceful stop not exercised: {stop.blocked}")
    assert stop.stop_s is not None
    code = stop.exit_code
    if stop.logs:
        check.add("Last log lines before the stop", "\n".join(stop.logs), "log")
    ok_code = code in (0, TERMINATED) and not stop.killed
    check.metric("Stop time", f"< {stop.timeout:g} s", f"{stop.stop_s:.1f} s", not stop.killed)
    check.metric("Exit code on docker stop", "0", str(code), ok_code)
    if stop.killed:
        check.summary = (
            f"the service ignored SIGTERM: docker stop killed it after the {stop.timeout:g} s "
            f"timeout (exit {code}, {stop.stop_s:.1f} s); every restart or deploy kills it in "
            "the middle of what it is writing"
        )
        pytest.fail(check.summary, pytrace=False)
    if code not in (0, TERMINATED):
        check.summary = (
            f"the service exited with code {code} on SIGTERM ({stop.stop_s:.1f} s after it): "
            "its shutdown failed (see the last log lines)"
        )
        pytest.fail(check.summary, pytrace=False)
    if stop.failure:
        check.summary = stop.failure
        pytest.fail(check.summary, pytrace=False)
    if code == TERMINATED:
        check.summary = (
            f"stopped {stop.stop_s:.1f} s after SIGTERM by the signal's default action (exit "
            f"{TERMINATED}): no shutdown code ran, but it was not left to be killed "
            f"(exit {KILLED}) after the {stop.timeout:g} s timeout"
        )
    else:
        check.summary = (
            f"exited by itself {stop.stop_s:.1f} s after SIGTERM with code 0 (timeout "
            f"{stop.timeout:g} s), and was ready again {stop.ready_s:.1f} s after its start"
        )


def judge_starts(starts: IdempotentInit, check: CheckRecorder, audit: TargetAudit) -> None:
    """FAIL when a start on the initialised volume did not become ready, logged an error the
    fresh install did not, changed the schema, lost a row, or changed a migration table."""
    __tracebackhide__ = True
    check.extend(starts.actions)
    if starts.blocked:
        raise check.blocked(f"idempotent start not exercised: {starts.blocked}")
    found: list[str] = []
    unverified: list[str] = []
    if starts.failure:
        if starts.logs:
            check.add("Last log lines", "\n".join(starts.logs), "log")
        found.append(starts.failure)
    for n, start in enumerate(starts.starts, 1):
        if start.new_errors:
            shown = start.new_errors[:SHOWN_ERRORS]
            more = len(start.new_errors) - len(shown)
            check.add(
                f"Start {n}: error lines the fresh install did not log",
                "\n".join(shown) + (f"\n... and {more} more" if more else ""),
                "log",
            )
            found.append(
                f"start {n} on the initialised volume logged {len(start.new_errors)} new error "
                f"line(s): {start.new_errors[0].strip()[:200]}"
            )
    several = len(audit.databases) > 1
    for db, before in starts.before.items():
        name = f" of {db}" if several else ""
        after = starts.after.get(db)
        if after is None:
            continue  # a start failed: already a finding
        for state in (before, after):
            if state.error:
                unverified.append(f"snapshot {state.label}{name}: {state.error}")
        if before.schema is not None and after.schema is not None:
            changes = diff(before.schema, after.schema)
            if changes:
                shown = "; ".join(d.describe() for d in changes[:5])
                found.append(f"the schema{name} changed across the starts: {shown}")
        ret = starts.retention.get(db)
        if ret is None:
            continue
        tracked = starts.migration_tables.get(db, [])
        check.add(
            f"Rows{name} before and after the starts, matched by identity"
            + (f" (migration records: {', '.join(tracked)}, must not change)" if tracked else ""),
            rows_table(ret),
            "table",
        )
        unverified += ret.unverified
        found += [f"{text}{name}" for text in ret.findings()]
    count = len(starts.starts)
    check.metric(
        "Starts on an initialised volume",
        str(audit.config.suites.idempotent_init.starts),
        str(count),
        not found and not unverified,
    )
    if found:
        check.summary = "; ".join(found)
        pytest.fail(check.summary, pytrace=False)
    if unverified:
        raise check.blocked("idempotent start not verified: " + "; ".join(unverified))
    tracked_all = sorted({t for ts in starts.migration_tables.values() for t in ts})
    migrations = (
        f"migration records unchanged ({', '.join(tracked_all)})"
        if tracked_all
        else "no migration table found"
    )
    check.summary = (
        f"{count} start(s) on the initialised volume: each ready, schema unchanged, no row "
        f"lost, {migrations}, no error line the fresh install did not log"
    )

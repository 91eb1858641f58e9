"""Shared by the restart and re-create suites: evidence and verdict of one cycle."""

from __future__ import annotations

import pytest

from persistaudit.audit import Cycle
from persistaudit.diff import diff
from persistaudit.plugin import CheckRecorder


def judge(cycle: Cycle, check: CheckRecorder, metric: str) -> None:
    """Record a cycle's evidence and metric; fail unless 100% retained and integrity ok.

    A cycle that could not be exercised or judged (a canary write refused before it, the
    target removed by something else) is BLOCKED: it proves neither loss nor retention.
    What a limit (size, time) kept from being read is unverified: BLOCKED, unless a definite
    loss was found anyway.
    """
    __tracebackhide__ = True
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
    if cycle.before is None or cycle.after is None or cycle.read_back is None:
        # Not an assert: a broken invariant is a bug of ours (ERROR), never a FAIL.
        raise RuntimeError(f"the {cycle.name} cycle ended without its snapshots or read-back")
    problems = []
    unverified = []
    for state in (cycle.before, cycle.after):
        if state.error:
            (unverified if state.blocked else problems).append(
                f"snapshot {state.label}: {state.error}"
            )
    rb = cycle.read_back
    check.add(
        "Canary records read back through the service",
        f"{len(rb.found)} of {len(rb.found) + len(rb.missing)} found"
        + (f"\nfirst missing: {rb.missing[0].marker}: {rb.first_failure}" if rb.missing else ""),
        "command",
    )
    if rb.missing:
        problems.append(f"{len(rb.missing)} of {len(cycle.canaries)} canary records lost")
    ret = cycle.retention
    if ret is not None:
        check.add(
            "Rows per table before and after (content digest sha256)",
            "\n".join(
                f"{t.name:<24} {t.rows_before:>7} -> {t.rows_after:<7} retained {t.retained:<7} "
                f"digest {'equal' if t.digest_equal else 'CHANGED'}"
                for t in ret.tables
            ),
            "table",
        )
        unverified += ret.unverified
        if not ret.complete:
            changed = [t.name for t in ret.tables if not t.digest_equal]
            problems.append(
                f"{ret.rows_retained} of {ret.rows_before} rows retained ({ret.percent:.1f}%)"
                + (f"; changed tables: {', '.join(changed)}" if changed else "")
            )
    after = cycle.after.facts
    if after is not None:
        check.add(
            "PRAGMA integrity_check (after)",
            after.integrity_error or "\n".join(after.integrity),
            "command",
        )
        if after.integrity_error:
            unverified.append(f"after the cycle: {after.integrity_error}")
        elif not after.integrity_ok:
            problems.append(f"integrity_check after the cycle: {after.integrity[0]}")
    if cycle.before.schema is not None and cycle.after.schema is not None:
        changes = diff(cycle.before.schema, cycle.after.schema)
        if changes:
            shown = "; ".join(d.describe() for d in changes[:5])
            problems.append(f"schema changed across the {cycle.name}: {shown}")
    percent = min(rb.percent, ret.percent if ret else 0.0)
    check.metric(metric, "100%", f"{percent:.1f}%", not problems and not unverified)
    if problems:
        check.summary = "; ".join(problems)
        pytest.fail(check.summary, pytrace=False)
    if unverified:
        raise check.blocked("retention not verified: " + "; ".join(unverified))
    if ret is None:
        raise RuntimeError(f"the {cycle.name} cycle passed without a retention comparison")
    check.summary = (
        f"100% retained: {len(rb.found)} canary records read back, {ret.rows_before} rows in "
        f"{len(ret.tables)} tables with equal counts and digests, integrity ok"
    )

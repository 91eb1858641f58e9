"""Crash under write load: after SIGKILL in the middle of writes, every database is sound and
every write the service acknowledged is there."""

from __future__ import annotations

import pytest

from persistaudit.audit import TargetAudit
from persistaudit.config import DatabaseEntry
from persistaudit.crash import CrashRound, CrashRun
from persistaudit.plugin import CheckRecorder

SHOWN_LOST = 5  # markers of lost records quoted in a summary


def _run(audit: TargetAudit, check: CheckRecorder) -> CrashRun:
    """The crash stage's result, its steps as evidence; BLOCKED when it could not run."""
    __tracebackhide__ = True
    run = audit.stage("crash")
    if not isinstance(run, CrashRun):
        raise RuntimeError("stage 'crash' must return a CrashRun")
    check.extend(run.actions)
    if run.blocked:
        check.extend(run.evidence)
        raise check.blocked(run.blocked)
    check.add(
        "Rounds",
        f"{len(run.rounds)} of {audit.config.suites.crash.rounds} round(s) with "
        f"{run.writers} writer(s); kill points from seed {run.seed} "
        "(suites.crash.seed repeats them)"
        + (f"; the rounds ended early: {run.stopped_early}" if run.stopped_early else ""),
    )
    return run


def _failed_start(check: CheckRecorder, crash_round: CrashRound) -> None:
    __tracebackhide__ = True
    if crash_round.logs:
        check.add(f"Round {crash_round.n}: last log lines", "\n".join(crash_round.logs), "log")
    check.summary = crash_round.failure
    pytest.fail(check.summary, pytrace=False)


@pytest.mark.check("crash.integrity")
def test_crash_integrity(
    persistaudit_started: TargetAudit,
    persistaudit_check: CheckRecorder,
    persistaudit_database: DatabaseEntry,
) -> None:
    """Passes when the service came back after every kill and the database's integrity_check
    was ok each time."""
    audit, check, database = persistaudit_started, persistaudit_check, persistaudit_database
    run = _run(audit, check)
    ready = [r.ready_s for r in run.rounds if r.ready_s is not None]
    problems: list[str] = []
    unverified: list[str] = []
    for crash_round in run.rounds:
        if crash_round.failure:
            _failed_start(check, crash_round)
        state = crash_round.after.get(database.name)
        if state is None:
            continue
        facts = state.facts
        where = f"after round {crash_round.n}'s kill"
        if facts is None:
            if state.blocked:
                unverified.append(f"{where}: {state.error}")
            else:  # a file SQLite cannot open after a crash is what this check is for
                error = state.error
                if state.snapshot is not None:  # name the file as the service knows it
                    error = error.replace(f"{state.snapshot.path}: ", "")
                problems.append(f"{database.path} cannot be read {where}: {error}")
            continue
        if facts.integrity_error:
            unverified.append(f"{where}: {facts.integrity_error}")
            continue
        check.add(f"PRAGMA integrity_check {where}", "\n".join(facts.integrity[:20]), "command")
        if not facts.integrity_ok:
            problems.append(
                f"integrity_check {where} reports {len(facts.integrity)} problem(s): "
                f"{facts.integrity[0]}"
            )
    judged = sum(1 for r in run.rounds if database.name in r.after)
    check.metric(
        audit.config.metric_name("Integrity after a kill during writes", database.name),
        "ok",
        f"ok in {judged - len(problems)} of {judged} round(s)" if judged else "not measured",
        judged > 0 and not problems,
    )
    if problems:
        check.summary = "; ".join(problems)
        pytest.fail(check.summary, pytrace=False)
    if unverified or not judged:
        raise check.blocked(
            "integrity after a kill not verified: "
            + ("; ".join(unverified) or "no round reached the snapshot")
        )
    check.summary = (
        f"integrity_check ok after each of {judged} kill(s) during writes; ready again after "
        f"at most {max(ready):.1f} s"
    )


@pytest.mark.check("crash.acknowledged_writes")
def test_crash_acknowledged_writes(
    persistaudit_started: TargetAudit, persistaudit_check: CheckRecorder
) -> None:
    """Passes when every record acknowledged before a kill is read back after the restart."""
    audit, check = persistaudit_started, persistaudit_check
    run = _run(audit, check)
    rows = [
        [
            str(r.n),
            f"{r.kill_at_s:.2f} s",
            str(len(r.load.acknowledged)),
            str(r.load.unanswered),
            str(len(r.read_back.missing)) if r.read_back else "not read",
            f"{r.ready_s:.1f} s" if r.ready_s is not None else "did not start",
        ]
        for r in run.rounds
    ]
    check.table(
        "Acknowledged writes per round",
        ["Round", "Kill after", "Acknowledged", "Under way at the kill", "Lost", "Ready again"],
        rows,
    )
    ready = [r.ready_s for r in run.rounds if r.ready_s is not None]
    check.metric(
        "Recovery time to ready after a kill",
        f"< {audit.config.readiness.timeout:g} s",
        f"{max(ready):.1f} s" if ready else "not measured",
        bool(ready) and not any(r.failure for r in run.rounds),
    )
    lost = run.lost
    read = sum(len(r.load.acknowledged) for r in run.rounds if r.read_back is not None)
    check.metric("Writes acknowledged before the kills", "-", str(run.acknowledged), True)
    check.metric(
        "Acknowledged writes lost",
        "0",
        str(len(lost)) if read else "not measured",
        read > 0 and not lost,
    )
    if lost:
        first = next(
            r.read_back.first_failure for r in run.rounds if r.read_back and r.read_back.missing
        )
        shown = ", ".join(c.marker for c in lost[:SHOWN_LOST])
        more = f" and {len(lost) - SHOWN_LOST} more" if len(lost) > SHOWN_LOST else ""
        check.summary = (
            f"{len(lost)} of {read} acknowledged writes were lost after a kill: the service "
            f"answered before they were durable ({shown}{more}; first read: {first})"
        )
        pytest.fail(check.summary, pytrace=False)
    failed = next((r for r in run.rounds if r.failure), None)
    if run.hollow:
        raise check.blocked(f"acknowledged writes not verified: {run.hollow}")
    if not read:
        reason = (
            f"the service did not come back after round {failed.n}'s kill (see crash.integrity)"
            if failed
            else "no write was acknowledged before a kill (widen suites.crash.kill_after)"
        )
        raise check.blocked(f"acknowledged writes not verified: {reason}")
    check.summary = (
        f"all {read} acknowledged writes were read back after {len(run.rounds)} kill(s) during "
        "writes"
    )

"""The crash stage: SIGKILL in the middle of a write load, then integrity and every acknowledged
write.

A restart stops the service politely; a crash (the OOM killer, a power cut of the host, a
`docker kill`) does not. Writers send canary records through the service's API at once; each
record the service acknowledged (every write step answered as expected) is remembered. At a
random point of the load the container is killed, started again on the same volume, and then
every database is checked for integrity and every acknowledged record read back. A service
that answers before it commits (a write-behind buffer) loses exactly those records.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from persistaudit import stages
from persistaudit.audit import DatabaseState, unchanged
from persistaudit.canary import Canary, ReadBack
from persistaudit.exceptions import CanaryError, TargetBlocked, TargetRemoved
from persistaudit.findings import Evidence

if TYPE_CHECKING:
    from persistaudit.audit import TargetAudit

MAX_ROUNDS = 20  # CrashSpec.rounds' maximum: each round gets its own slice of the stage's block
ROUND_BLOCK = stages.CANARY_BLOCK // MAX_ROUNDS  # canary numbers a round may write, at most
KILL_SETTLE_S = 10.0  # how long the engine may take to show the killed container as stopped
JOIN_S = 60.0  # how long a writer still waiting for an answer may take after the kill
LOG_LINES = 20


@dataclass
class Load:
    """What a write load achieved before (and at) the kill."""

    acknowledged: list[Canary] = field(default_factory=list)
    unanswered: int = 0  # writes under way at the kill: no answer, so not acknowledged
    refusal: CanaryError | None = None  # the first write refused before the kill
    exhausted: bool = False  # the round's canary numbers ran out before the kill
    stuck: int = 0  # writers still waiting for an answer JOIN_S after the kill


@dataclass
class CrashRound:
    n: int
    kill_at_s: float  # when the kill was sent, seconds into the load
    load: Load
    exit_code: int | None = None  # after the kill (137: SIGKILL)
    ready_s: float | None = None  # from the start after the kill until ready
    after: dict[str, DatabaseState] = field(default_factory=dict)
    read_back: ReadBack | None = None
    failure: str = ""  # the service did not come back after the kill: a finding
    logs: list[str] = field(default_factory=list)  # that failed start's log


@dataclass
class CrashRun:
    seed: int
    writers: int
    rounds: list[CrashRound] = field(default_factory=list)
    before: dict[str, DatabaseState] = field(default_factory=dict)
    blocked: str = ""  # the crash could not be exercised at all
    hollow: str = ""  # the acknowledged writes changed no database: they prove nothing
    stopped_early: str = ""  # why fewer rounds than configured ran
    actions: list[Evidence] = field(default_factory=list)
    evidence: list[Evidence] = field(default_factory=list)

    @property
    def acknowledged(self) -> int:
        return sum(len(r.load.acknowledged) for r in self.rounds)

    @property
    def lost(self) -> list[Canary]:
        return [c for r in self.rounds if r.read_back for c in r.read_back.missing]


def drive_load(
    open_writer: Callable[[], Callable[[int], Canary]],
    writers: int,
    numbers: range,
    kill_at_s: float,
    kill: Callable[[], None],
) -> Load:
    """Run writers concurrently over numbers and call kill() kill_at_s seconds in.

    Every writer's session is opened first (a CanaryError there is raised: the load could not
    start). A write that fails before the kill is a refusal and ends its writer; one that fails
    after it got no answer because of the kill. The writers go on until kill() has returned, so
    the kill lands in the middle of writes, not on a service they have just left idle. The
    kill is sent even when every writer ended.
    """
    writes = [open_writer() for _ in range(writers)]
    load = Load()
    lock = threading.Lock()
    killed = threading.Event()  # the kill is on its way: a write failing now got no answer
    landed = threading.Event()  # kill() returned: the service is gone, start no more writes
    pending = iter(numbers)

    def work(write: Callable[[int], Canary]) -> None:
        while not landed.is_set():
            with lock:
                i = next(pending, None)
                if i is None:
                    load.exhausted = True
                    return
            try:
                record = write(i)
            except CanaryError as exc:
                with lock:
                    if killed.is_set():
                        load.unanswered += 1
                    elif load.refusal is None:
                        load.refusal = exc
                return
            with lock:
                load.acknowledged.append(record)

    threads = [threading.Thread(target=work, args=(w,), daemon=True) for w in writes]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    deadline = started + kill_at_s
    while (left := deadline - time.monotonic()) > 0 and any(t.is_alive() for t in threads):
        time.sleep(min(left, 0.05))
    time.sleep(max(0.0, deadline - time.monotonic()))
    killed.set()
    try:
        kill()
    finally:
        landed.set()
        for thread in threads:
            thread.join(max(0.0, started + kill_at_s + JOIN_S - time.monotonic()))
        load.stuck = sum(t.is_alive() for t in threads)
    load.acknowledged.sort(key=lambda c: c.i)
    return load


def run(audit: TargetAudit) -> CrashRun:
    """Kill the target in the middle of a write load, rounds times; see the module's text."""
    spec = audit.config.suites.crash
    seed = spec.seed if spec.seed is not None else random.SystemRandom().randrange(2**31)
    result = CrashRun(seed, spec.writers)
    if audit.fresh.blocked is not None:
        result.blocked = "the target did not start"
        return result
    rng = random.Random(seed)
    try:
        result.before = audit.snapshot("before-crash")
        for n in range(1, spec.rounds + 1):
            crash_round = _round(audit, result, n, rng.uniform(*spec.kill_after))
            if crash_round is None:
                break
            result.rounds.append(crash_round)
            if crash_round.failure:
                result.stopped_early = f"the service did not come back after round {n}'s kill"
                break
            broken = [db for db, s in crash_round.after.items() if _corrupt(s)]
            if broken:
                # Further kills of a corrupt database prove nothing more.
                result.stopped_early = f"round {n} left {', '.join(broken)} corrupt"
                break
    except TargetRemoved:
        removed = audit.removed("the crash rounds", settle=True)
        result.blocked = str(removed) if removed else "the target was removed during the crash"
        return result
    last = next((r.after for r in reversed(result.rounds) if r.after), None)
    if audit.config.canary.changes_nothing:
        result.hollow = "the canary writes change nothing (GET/HEAD only)"
    elif last is not None and result.acknowledged and unchanged(result.before, last):
        result.hollow = (
            f"nothing new was found in any database after {result.acknowledged} acknowledged "
            "writes: they did not reach the audited databases"
        )
    return result


def _corrupt(state: DatabaseState) -> bool:
    facts = state.facts
    if facts is None:
        return bool(state.error) and not state.blocked and not state.missing
    return not facts.integrity_error and not facts.integrity_ok


def _round(audit: TargetAudit, result: CrashRun, n: int, kill_at_s: float) -> CrashRound | None:
    """One round: load, kill, start, snapshot, read back. None when the load never started
    (result.blocked says why)."""
    spec = audit.config.suites.crash
    runtime = audit.runtime
    name = runtime.container.name
    first = stages.get("crash").canary_start + (n - 1) * ROUND_BLOCK
    audit.log(
        f"crash round {n}: {spec.writers} writer(s) through the service, SIGKILL after "
        f"{kill_at_s:.2f} s"
    )

    def open_writer() -> Callable[[int], Canary]:
        return audit.canaries.writer(runtime.container, audit.run_id)

    try:
        load = drive_load(
            open_writer, spec.writers, range(first, first + ROUND_BLOCK), kill_at_s, runtime.kill
        )
    except CanaryError as exc:
        result.blocked = f"the crash could not be exercised: {exc}"
        result.evidence = audit.canary_evidence(exc)
        audit.log(f"BLOCKED: {result.blocked}")
        return None
    crash_round = CrashRound(n, kill_at_s, load)
    acked = load.acknowledged
    if load.refusal is not None and not acked:
        result.blocked = (
            f"the crash could not be exercised: the write load was refused: {load.refusal}"
        )
        result.evidence = audit.canary_evidence(load.refusal)
        audit.log(f"BLOCKED: {result.blocked}")
        # The container was killed all the same: start it again for the stages after this one.
        _start_again(audit, result, crash_round)
        return None
    crash_round.exit_code = _exit_code(audit)
    markers = f" (markers {acked[0].marker} .. {acked[-1].marker})" if acked else ""
    result.actions.append(
        Evidence(
            f"Round {n}: write load, then SIGKILL",
            f"{spec.writers} concurrent writer(s): {audit.canaries.describe(acked)}{markers}\n"
            f"$ docker kill --signal SIGKILL {name}   # {kill_at_s:.2f} s into the load\n"
            f"# {len(acked)} write(s) acknowledged, {load.unanswered} under way at the kill "
            f"(no answer), exit code {crash_round.exit_code}"
            + ("; the load ran out of canary numbers before the kill" if load.exhausted else "")
            + (f"; {load.stuck} writer(s) still waiting for an answer" if load.stuck else "")
            + (f"\n# a write was refused before the kill: {load.refusal}" if load.refusal else ""),
            "command",
        )
    )
    if not _start_again(audit, result, crash_round):
        return crash_round
    crash_round.after = audit.snapshot(f"after-crash-{n}")
    audit.log(f"crash round {n}: reading {len(acked)} acknowledged records back")
    crash_round.read_back = audit.canaries.read(runtime.container, audit.run_id, acked)
    return crash_round


def _exit_code(audit: TargetAudit) -> int | None:
    """The killed container's exit code, once the engine shows it stopped (or restarted)."""
    container = audit.runtime.container
    deadline = time.monotonic() + KILL_SETTLE_S
    while True:
        state = container.state()
        if state.status not in ("running", "paused") or time.monotonic() > deadline:
            return state.exit_code if state.status != "running" else None
        time.sleep(0.05)


def _start_again(audit: TargetAudit, result: CrashRun, crash_round: CrashRound) -> bool:
    """Start the killed target on its volume; False (with the finding) when it does not."""
    runtime = audit.runtime
    name = runtime.container.name
    started = time.monotonic()
    try:
        crash_round.ready_s = runtime.restart()
    except TargetBlocked as exc:
        crash_round.failure = (
            f"the service did not start again after the kill in round {crash_round.n}: {exc}"
        )
        crash_round.logs = list(exc.evidence.get("logs", []))[-LOG_LINES:]  # type: ignore[call-overload]
        return False
    audit.log(f"crash round {crash_round.n}: ready again after {crash_round.ready_s:.1f} s")
    result.actions.append(
        Evidence(
            f"Round {crash_round.n}: start it again on the same volume",
            f"$ {runtime.step_command('restart').format(name=name)}\n"
            f"# ready after {time.monotonic() - started:.1f} s",
            "command",
        )
    )
    return True


stages.register("crash", run)

"""Wait strategies: poll a started container until it is ready, or say why it never will be.

A container that exits, loops on restart or stays unready past the timeout is BLOCKED; the
exit code, restart count and last log lines go into the evidence, as an auditor would quote them.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, replace
from typing import Protocol

from persistaudit import activity
from persistaudit.config import ReadinessSpec
from persistaudit.exceptions import TargetBlocked
from persistaudit.http_deadline import fetch

LOG_TAIL = 40
RESTART_LOOP_COUNT = 2
EXIT_CODE_WAIT_S = 3.0  # how long a loop caught only running is watched for its exit code
POLL_TIMEOUT = 2.0  # seconds one poll may take in all, at most
MIN_POLL_TIMEOUT = 0.2


@dataclass(frozen=True)
class ContainerState:
    status: str  # created, running, paused, restarting, exited, dead
    exit_code: int
    restart_count: int
    error: str
    # The engine's State.Health: "" when the container has no healthcheck, else starting,
    # healthy or unhealthy; health_log is its last probes ("exit N: output"), oldest first.
    health: str = ""
    health_log: tuple[str, ...] = ()
    # The engine's State.StartedAt, new at every start of the container ("" when unknown).
    started_at: str = ""


class Probeable(Protocol):
    """What a wait strategy needs of a container: the polling part of runtime.ContainerHandle."""

    @property
    def name(self) -> str: ...

    def state(self) -> ContainerState: ...
    def logs(self, tail: int = LOG_TAIL, current_run: bool = False) -> list[str]: ...
    def exec(self, command: list[str], timeout: float | None = None) -> tuple[int, str]: ...
    def url(self, port: int, path: str) -> str: ...


class WaitStrategy(Protocol):
    def describe(self) -> str: ...
    def ready(self, container: Probeable, timeout: float = POLL_TIMEOUT) -> bool:
        """One poll, done within timeout seconds."""
        ...


@dataclass(frozen=True)
class HttpWait:
    port: int
    path: str
    status: int

    def describe(self) -> str:
        return f"HTTP GET {self.path} on port {self.port} answers {self.status}"

    def ready(self, container: Probeable, timeout: float = POLL_TIMEOUT) -> bool:
        try:
            url = container.url(self.port, self.path)
        except LookupError:
            return False  # port not published yet
        try:
            # The whole request shares the deadline: a server that drips its answer a byte
            # at a time cannot hold the poll, nor the wait, past its timeout.
            status, _ = fetch(url, timeout=timeout, max_body=0)
        except (OSError, ValueError):
            return False
        return status == self.status


@dataclass(frozen=True)
class LogWait:
    pattern: str

    def describe(self) -> str:
        return f"log line matching /{self.pattern}/"

    def ready(self, container: Probeable, timeout: float = POLL_TIMEOUT) -> bool:
        # Only the current run's lines: after a restart the previous run's still match.
        regex = re.compile(self.pattern)
        return any(regex.search(line) for line in container.logs(tail=1000, current_run=True))


@dataclass(frozen=True)
class CommandWait:
    command: tuple[str, ...]

    def describe(self) -> str:
        return f"command {' '.join(self.command)} exits 0"

    def ready(self, container: Probeable, timeout: float = POLL_TIMEOUT) -> bool:
        code, _ = container.exec(list(self.command), timeout=timeout)
        return code == 0


@dataclass(frozen=True)
class HealthWait:
    """Ready when the engine reports the container's healthcheck healthy.

    The engine resets the status to "starting" whenever the container starts, so the previous
    run's "healthy" does not count after a restart or a re-create.
    """

    def describe(self) -> str:
        return "healthcheck reports healthy"

    def ready(self, container: Probeable, timeout: float = POLL_TIMEOUT) -> bool:
        state = container.state()
        if state.status == "running" and not state.health:
            # Checked on the image before the audit; this is a container run without one.
            _blocked(
                container,
                "no-healthcheck",
                "has no healthcheck (readiness.healthcheck needs a HEALTHCHECK in the image). "
                "Hint: add one to the Dockerfile, or choose http, log or command readiness",
                state,
                self,
            )
        return state.health == "healthy"


class PerStart:
    """The container as one wait polls it: each published port is looked up once per start of
    the container (a new State.StartedAt), not on every poll, which would ask the engine
    twice per poll. Without a start time every lookup goes to the container."""

    def __init__(self, container: Probeable) -> None:
        self._container = container
        self._started = ""
        self._bases: dict[int, str] = {}

    @property
    def name(self) -> str:
        return self._container.name

    def state(self) -> ContainerState:
        state = self._container.state()
        if state.started_at != self._started:
            self._started, self._bases = state.started_at, {}
        return state

    def logs(self, tail: int = LOG_TAIL, current_run: bool = False) -> list[str]:
        return self._container.logs(tail=tail, current_run=current_run)

    def exec(self, command: list[str], timeout: float | None = None) -> tuple[int, str]:
        return self._container.exec(command, timeout=timeout)

    def url(self, port: int, path: str) -> str:
        if not self._started:
            return self._container.url(port, path)
        if port not in self._bases:
            self._bases[port] = self._container.url(port, "")  # LookupError: not kept
        return self._bases[port] + path


def strategy_for(spec: ReadinessSpec) -> WaitStrategy:
    if spec.http is not None:
        return HttpWait(spec.http.port, spec.http.path, spec.http.status)
    if spec.log is not None:
        return LogWait(spec.log)
    if spec.healthcheck:
        return HealthWait()
    assert spec.command is not None
    return CommandWait(tuple(spec.command))


def wait_ready(
    container: Probeable,
    strategy: WaitStrategy,
    *,
    timeout: float,
    interval: float,
    restarts_before: int = 0,
) -> float:
    """Poll until ready and return the seconds it took; raise TargetBlocked otherwise.

    restarts_before is the restart count when this wait began: a docker restart we asked
    for is not a crash loop, but any further restart is.
    """
    with activity.during("waiting", f"readiness: {strategy.describe()}"):
        return _poll(container, strategy, timeout, interval, restarts_before)


def _poll(
    container: Probeable,
    strategy: WaitStrategy,
    timeout: float,
    interval: float,
    restarts_before: int,
) -> float:
    started = time.monotonic()
    crashed_with = 0  # the last non-zero exit code seen: the engine resets it on each restart
    polled = PerStart(container)
    while True:
        state = polled.state()
        crashed_with = state.exit_code or crashed_with
        restarts = state.restart_count - restarts_before
        left = timeout - (time.monotonic() - started)
        poll = min(POLL_TIMEOUT, max(left, MIN_POLL_TIMEOUT))
        if (
            state.status == "running"
            and restarts < RESTART_LOOP_COUNT
            and strategy.ready(polled, timeout=poll)
        ):
            return time.monotonic() - started
        elapsed = time.monotonic() - started
        # One restart may be a service waiting for a dependency; two in a row is a loop.
        if restarts >= RESTART_LOOP_COUNT:
            crashed_with = state.exit_code or crashed_with or _next_exit_code(container)
            state = replace(state, exit_code=crashed_with)
            _blocked(
                container,
                "restart-loop",
                f"restarts in a loop ({restarts} restarts in "
                f"{elapsed:.1f} s, last exit code {state.exit_code})",
                state,
                strategy,
            )
        if state.status in ("exited", "dead"):
            _blocked(
                container,
                "exited",
                f"exited with code {state.exit_code} before it was ready",
                state,
                strategy,
            )
        if elapsed > timeout:
            health = f", health {state.health}" if state.health else ""
            _blocked(
                container,
                "timeout",
                f"not ready after {timeout:g} s (waiting for "
                f"{strategy.describe()}; status {state.status}{health})",
                state,
                strategy,
            )
        time.sleep(interval)


def _next_exit_code(container: Probeable) -> int:
    """The exit code of the loop's next crash, watched for a moment: under load every earlier
    poll may have caught the container running (its ExitCode reset to 0), and the engine keeps
    no history. The restart back-off grows, so the next "restarting" state lasts long enough to
    be seen. 0 when none was seen in EXIT_CODE_WAIT_S."""
    deadline = time.monotonic() + EXIT_CODE_WAIT_S
    while time.monotonic() < deadline:
        code = container.state().exit_code
        if code:
            return code
        time.sleep(0.02)
    return 0


def fold_repeats(lines: list[str]) -> list[str]:
    """Fold runs of identical lines (probe requests, crash loops) so the tail stays telling."""
    out: list[str] = []
    count = 0
    for i, line in enumerate(lines):
        count += 1
        if i + 1 < len(lines) and lines[i + 1] == line:
            continue
        out.append(line if count == 1 else f"{line}  [repeated {count} times]")
        count = 0
    return out


def _blocked(
    container: Probeable, reason: str, what: str, state: ContainerState, strategy: WaitStrategy
) -> None:
    evidence: dict[str, object] = {
        "reason": reason,
        "status": state.status,
        "exit_code": state.exit_code,
        "restart_count": state.restart_count,
        "waited_for": strategy.describe(),
        "logs": fold_repeats(container.logs(tail=10 * LOG_TAIL))[-LOG_TAIL:],
    }
    if state.error:
        evidence["engine_error"] = state.error
    if state.health:
        evidence["health"] = state.health
        evidence["health_log"] = list(state.health_log)
    raise TargetBlocked(f"container {container.name} {what}", reason=reason, evidence=evidence)

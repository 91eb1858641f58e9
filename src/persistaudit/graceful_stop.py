"""The graceful stop stage: `docker stop`, then how long the service took and how it exited.

A service that ignores SIGTERM still "restarts fine": the engine kills it after the stop
timeout, in the middle of whatever it was writing, on every restart and deploy. Only the
stop itself shows it: the time it took and the exit code (137: killed).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from persistaudit.exceptions import TargetBlocked
from persistaudit.findings import Evidence

if TYPE_CHECKING:
    from persistaudit.audit import TargetAudit

KILLED = 137  # 128 + SIGKILL: the engine killed it after the timeout
TERMINATED = 143  # 128 + SIGTERM: SIGTERM's default action ended it (no handler ran)
LOG_LINES = 20  # the last lines the service logged before it stopped


@dataclass
class GracefulStop:
    timeout: float
    stop_s: float | None = None
    exit_code: int | None = None
    logs: list[str] = field(default_factory=list)  # the last lines before the stop
    ready_s: float | None = None  # started again after the stop
    failure: str = ""  # it did not come back: a finding
    blocked: str = ""  # the stop could not be exercised
    actions: list[Evidence] = field(default_factory=list)

    @property
    def killed(self) -> bool:
        """The engine had to kill it: exit 137, or it was still running at the timeout."""
        return self.exit_code == KILLED or (self.stop_s is not None and self.stop_s >= self.timeout)


def run(audit: TargetAudit) -> GracefulStop:
    """Stop the running target with the configured timeout, record it, start it again."""
    spec = audit.config.suites.graceful_stop
    result = GracefulStop(spec.timeout)
    runtime = audit.runtime
    if audit.fresh.blocked is not None:
        result.blocked = "the target did not start"
        return result
    name = runtime.container.name
    audit.log(f"graceful stop: docker stop --time {spec.timeout:g} {name}")
    started = time.monotonic()
    runtime.stop(spec.timeout)
    result.stop_s = time.monotonic() - started
    state = runtime.container.state()
    result.exit_code = state.exit_code
    result.logs = runtime.container.logs(tail=LOG_LINES)
    result.actions.append(
        Evidence(
            "Stop the container",
            f"$ docker stop --time {spec.timeout:g} {name}\n"
            f"# stopped after {result.stop_s:.1f} s, exit code {result.exit_code}",
            "command",
        )
    )
    try:
        result.ready_s = runtime.restart()
    except TargetBlocked as exc:
        result.failure = f"the target did not start again after the stop: {exc}"
        return result
    result.actions.append(
        Evidence(
            "Start it again",
            f"$ {runtime.step_command('restart').format(name=name)}\n"
            f"# ready after {result.ready_s:.1f} s",
            "command",
        )
    )
    return result

"""The exec canary driver: each step is a command run in the container (docker exec).

For services without a port: a CLI in the image that talks to the service's databases, or
a request sent on the standard input of a command that reads JSON lines. The evidence of a
refused write shows the command line, never the standard input (it may carry credentials).
"""

from __future__ import annotations

import shlex
import time
from collections.abc import Callable

from persistaudit.canary import (
    PROBLEM_EXCERPT,
    RESPONSE_EXCERPT,
    Canary,
    Perform,
    ReadBack,
    StepOutcome,
    fill,
    read_records,
    write_record,
    write_records,
)
from persistaudit.config import CanarySpec, CanaryStep, ExecStep
from persistaudit.runtime.base import ContainerHandle

TIMED_OUT = 124  # what ContainerHandle.exec answers for a command still running at its timeout


def command_line(step: ExecStep, variables: dict[str, str]) -> str:
    """The step's command as a shell would show it, with the standard input only sized."""
    shown = "$ " + shlex.join(fill(step.argv, variables))
    if step.stdin is not None:
        size = len(fill(step.stdin, variables).encode())
        shown += f" < (standard input: {size} bytes, not shown)"
    return shown


def run_step(
    container: ContainerHandle, step: ExecStep, variables: dict[str, str]
) -> tuple[int, str, float]:
    """Run one step in the container: exit code, output and the seconds it took."""
    stdin = None if step.stdin is None else fill(step.stdin, variables).encode()
    started = time.monotonic()
    code, output = container.exec(fill(step.argv, variables), timeout=step.timeout, stdin=stdin)
    return code, output, time.monotonic() - started


def check(
    step: ExecStep, code: int, output: str, took: float, variables: dict[str, str]
) -> str | None:
    """None when the step's expectations hold, else what went wrong, in one line."""
    shown = shlex.join(fill(step.argv, variables))
    said = " ".join(output[:PROBLEM_EXCERPT].split())
    if code == TIMED_OUT and took >= step.timeout and step.expect_exit != TIMED_OUT:
        return f"{shown} did not finish within its timeout of {step.timeout:g} s: {said}"
    if code != step.expect_exit:
        return f"{shown} exited {code}, expected {step.expect_exit}: {said}"
    if step.expect_output_contains is not None:
        needle = fill(step.expect_output_contains, variables)
        if needle not in output:
            return f"{shown} answered without {needle!r}: {said}"
    return None


class ExecCanary:
    """Canary records written and read with commands run in the container (CanaryDriver)."""

    KIND = ExecStep.KIND

    def __init__(self, spec: CanarySpec) -> None:
        self.spec = spec

    def _perform(self, container: ContainerHandle) -> Perform:
        def perform(step: CanaryStep, variables: dict[str, str]) -> StepOutcome:
            if not isinstance(step, ExecStep):
                raise TypeError(f"the exec canary driver was given a {step.KIND} step")
            code, output, took = run_step(container, step, variables)
            return StepOutcome(
                check(step, code, output, took, variables),
                request=f"{command_line(step, variables)}\n# expecting exit {step.expect_exit}",
                response=f"exit {code}\n{output[:RESPONSE_EXCERPT]}",
            )

        return perform

    def write(self, container: ContainerHandle, run: str, start: int) -> list[Canary]:
        # A command holds no session: concurrent writers share one performer.
        workers = max(1, min(self.spec.concurrency, self.spec.records))
        return write_records(self.spec, run, start, [self._perform(container)] * workers)

    def writer(self, container: ContainerHandle, run: str) -> Callable[[int], Canary]:
        perform = self._perform(container)
        return lambda i: write_record(self.spec, run, i, perform)

    def read(self, container: ContainerHandle, run: str, canaries: list[Canary]) -> ReadBack:
        workers = max(1, min(self.spec.concurrency, len(canaries)))
        return read_records(self.spec, run, canaries, [self._perform(container)] * workers)

    def describe(self, records: list[Canary]) -> str:
        first = self.spec.write[0]
        assert isinstance(first, ExecStep)
        stdin = " < (standard input)" if first.stdin is not None else ""
        more = len(self.spec.write) - 1
        steps = f" and {more} more command(s)" if more else ""
        return f"$ {shlex.join(first.argv)}{stdin}{steps} x {len(records)}"

"""Canary records: written through the service before a cycle, read back after it.

Each record carries a unique marker, so a read that finds it proves that this very record
survived, not merely that some rows exist. How a step reaches the service is a driver's job
(canary_http: requests to a published port; canary_exec: a command run in the container);
canary_drivers chooses one by the steps' kind. This module holds what they share.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from persistaudit.config import CANARY_VARS, SESSION_VAR, CanarySpec, CanaryStep
from persistaudit.exceptions import CanaryError
from persistaudit.runtime.base import ContainerHandle

RESPONSE_EXCERPT = 500  # characters of a response kept as evidence
PROBLEM_EXCERPT = 200  # characters of a response quoted in a one-line problem
_PLACEHOLDER = re.compile(r"\{(" + "|".join((*CANARY_VARS, SESSION_VAR)) + r"|capture\.\w+)\}")


@dataclass(frozen=True)
class Canary:
    i: int
    marker: str
    # What its write steps captured ({capture.NAME} -> value), for the reads after the cycle.
    captures: tuple[tuple[str, str], ...] = ()

    def vars(self, run: str) -> dict[str, str]:
        return {"i": str(self.i), "marker": self.marker, "run": run, **dict(self.captures)}


@dataclass(frozen=True)
class ReadBack:
    found: list[Canary]
    missing: list[Canary]
    first_failure: str  # what the first missing record's read answered

    @property
    def percent(self) -> float:
        total = len(self.found) + len(self.missing)
        return 100.0 * len(self.found) / total if total else 100.0


@dataclass(frozen=True)
class StepOutcome:
    """What one step did: its problem (None when its expectations held) and, for the
    evidence of a refused write, the request and the response as an auditor quotes them."""

    problem: str | None
    request: str  # no headers, bodies or standard input: they may hold credentials
    response: str
    captured: dict[str, str] = field(default_factory=dict)  # "capture.NAME" -> value


class CanaryDriver(Protocol):
    """Writes and reads canary records through the service, one way of reaching it."""

    def write(self, container: ContainerHandle, run: str, start: int) -> list[Canary]:
        """Write the spec's number of records numbered from start; CanaryError on a refusal,
        with the request and response for the evidence."""
        ...

    def read(self, container: ContainerHandle, run: str, canaries: list[Canary]) -> ReadBack:
        """Read each record back: found or missing (a missing one is not an error)."""
        ...

    def writer(self, container: ContainerHandle, run: str) -> Callable[[int], Canary]:
        """A function writing record i alone, in a session of its own (one per concurrent
        writer of a load); CanaryError when the session cannot be opened or a write fails."""
        ...

    def describe(self, records: list[Canary]) -> str:
        """One line for the evidence: how these records were written."""
        ...


def fill(value: Any, variables: dict[str, str]) -> Any:
    """Substitute {i}, {marker}, {run}, {session} and {capture.NAME} in every string inside value.

    A placeholder without a value is left as written (the config's validation makes sure
    that every {capture.NAME} is captured by an earlier step).
    """
    if isinstance(value, str):
        return _PLACEHOLDER.sub(lambda m: variables.get(m.group(1), m.group()), value)
    if isinstance(value, dict):
        return {fill(k, variables): fill(v, variables) for k, v in value.items()}
    if isinstance(value, list):
        return [fill(v, variables) for v in value]
    return value


Perform = Callable[[CanaryStep, dict[str, str]], StepOutcome]


def write_records(spec: CanarySpec, run: str, start: int, perform: Perform) -> list[Canary]:
    """Write spec.records canaries numbered from start, each through every write step;
    raise CanaryError on the first step whose expectations fail."""
    written: list[Canary] = []
    for i in range(start, start + spec.records):
        progress = f"after {len(written)} of {spec.records} were written"
        written.append(write_record(spec, run, i, perform, progress))
    return written


def write_record(
    spec: CanarySpec, run: str, i: int, perform: Perform, progress: str = ""
) -> Canary:
    """Write canary i through every write step; CanaryError on the first step that fails
    (progress, such as "after 3 of 20 were written", goes into its message)."""
    canary = Canary(i, f"pa-{run}-{i:06d}")
    variables = canary.vars(run)
    captured: dict[str, str] = {}
    for step in spec.write:
        outcome = perform(step, variables)
        if outcome.problem:
            raise CanaryError(
                f"writing canary {canary.marker} failed{' ' + progress if progress else ''}: "
                f"{outcome.problem}",
                request=outcome.request,
                response=outcome.response,
            )
        captured |= outcome.captured
        variables |= outcome.captured
    return Canary(i, canary.marker, tuple(captured.items()))


def read_records(spec: CanarySpec, run: str, canaries: list[Canary], perform: Perform) -> ReadBack:
    """Read each canary through the read steps; the first failing step makes it missing."""
    found: list[Canary] = []
    missing: list[Canary] = []
    first_failure = ""
    for canary in canaries:
        variables = canary.vars(run)
        problem = None
        for step in spec.read:
            outcome = perform(step, variables)
            problem = outcome.problem
            if problem:
                break
            variables |= outcome.captured
        if problem is None:
            found.append(canary)
        else:
            missing.append(canary)
            first_failure = first_failure or problem
    return ReadBack(found, missing, first_failure)

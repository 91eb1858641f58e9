"""Canary records: written through the service before a cycle, read back after it.

Each record carries a unique marker, so a read that finds it proves that this very record
survived, not merely that some rows exist. How a step reaches the service is a driver's job
(canary_http: requests to a published port; canary_exec: a command run in the container);
canary_drivers chooses one by the steps' kind. This module holds what they share.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar, cast

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
_R = TypeVar("_R")


@dataclass(frozen=True)
class Refused:
    """A canary write step whose expectations failed: the record and the step's outcome."""

    marker: str
    outcome: StepOutcome

    def error(self, progress: str = "") -> CanaryError:
        """The CanaryError that stops the cycle; progress ("after 3 of 20 were written")
        goes into its message."""
        return CanaryError(
            f"writing canary {self.marker} failed{' ' + progress if progress else ''}: "
            f"{self.outcome.problem}",
            request=self.outcome.request,
            response=self.outcome.response,
        )


def write_records(
    spec: CanarySpec, run: str, start: int, performers: Sequence[Perform]
) -> list[Canary]:
    """Write spec.records canaries numbered from start, each through every write step, by one
    writer per performer (a session of its own), at the same time when there are several;
    raise CanaryError on the first step whose expectations fail (of the lowest-numbered
    record that failed, once every writer stopped)."""
    numbers = range(start, start + spec.records)
    if len(performers) == 1:
        written: list[Canary] = []
        for i in numbers:
            progress = f"after {len(written)} of {spec.records} were written"
            written.append(write_record(spec, run, i, performers[0], progress))
        return written
    results = concurrently(
        numbers,
        performers,
        lambda perform, i: attempt(spec, run, i, perform),
        stop=lambda result: isinstance(result, Refused),
    )
    refused = [r for i in sorted(results) if isinstance(r := results[i], Refused)]
    if refused:
        done = sum(isinstance(result, Canary) for result in results.values())
        raise refused[0].error(
            f"after {done} of {spec.records} were written, {len(performers)} at a time"
        )
    return [cast(Canary, results[i]) for i in numbers]


def write_record(
    spec: CanarySpec, run: str, i: int, perform: Perform, progress: str = ""
) -> Canary:
    """Write canary i through every write step; CanaryError on the first step that fails
    (progress, such as "after 3 of 20 were written", goes into its message)."""
    result = attempt(spec, run, i, perform)
    if isinstance(result, Refused):
        raise result.error(progress)
    return result


def attempt(spec: CanarySpec, run: str, i: int, perform: Perform) -> Canary | Refused:
    """Write canary i through every write step, up to the first one that fails."""
    canary = Canary(i, f"pa-{run}-{i:06d}")
    variables = canary.vars(run)
    captured: dict[str, str] = {}
    for step in spec.write:
        outcome = perform(step, variables)
        if outcome.problem:
            return Refused(canary.marker, outcome)
        captured |= outcome.captured
        variables |= outcome.captured
    return Canary(i, canary.marker, tuple(captured.items()))


def read_record(spec: CanarySpec, run: str, canary: Canary, perform: Perform) -> str | None:
    """Read one canary through the read steps: None when found, else the first failing
    step's problem."""
    variables = canary.vars(run)
    for step in spec.read:
        outcome = perform(step, variables)
        if outcome.problem:
            return outcome.problem
        variables |= outcome.captured
    return None


def read_records(
    spec: CanarySpec, run: str, canaries: list[Canary], performers: Sequence[Perform]
) -> ReadBack:
    """Read each canary through the read steps, by one reader per performer (at the same time
    when there are several); the first failing step makes it missing."""
    if len(performers) == 1:
        problems = [read_record(spec, run, canary, performers[0]) for canary in canaries]
    else:
        results = concurrently(
            range(len(canaries)),
            performers,
            lambda perform, n: read_record(spec, run, canaries[n], perform),
        )
        problems = [results[n] for n in range(len(canaries))]
    found = [c for c, problem in zip(canaries, problems, strict=True) if problem is None]
    missing = [c for c, problem in zip(canaries, problems, strict=True) if problem is not None]
    first_failure = next((problem for problem in problems if problem), "")
    return ReadBack(found, missing, first_failure)


def concurrently(
    numbers: Sequence[int],
    performers: Sequence[Perform],
    work: Callable[[Perform, int], _R],
    stop: Callable[[_R], bool] = lambda _result: False,
) -> dict[int, _R]:
    """work(perform, n) for every number, by one thread per performer taking the numbers in
    order; once stop(result) holds for one, no thread starts another. Every thread is joined
    before this returns or raises (an interrupt too): no request outlives the call."""
    results: dict[int, _R] = {}
    errors: list[BaseException] = []
    pending = iter(numbers)
    lock = threading.Lock()
    halted = threading.Event()

    def worker(perform: Perform) -> None:
        while not halted.is_set():
            with lock:
                n = next(pending, None)
            if n is None:
                return
            try:
                result = work(perform, n)
            except BaseException as exc:  # re-raised by the caller's thread
                errors.append(exc)
                halted.set()
                return
            results[n] = result
            if stop(result):
                halted.set()

    threads = [
        threading.Thread(target=worker, args=(p,), name=f"persistaudit-canary-{k}", daemon=True)
        for k, p in enumerate(performers)
    ]
    for thread in threads:
        thread.start()
    try:
        for thread in threads:
            thread.join()
    finally:
        halted.set()
        for thread in threads:
            thread.join()
    if errors:
        raise errors[0]
    return results

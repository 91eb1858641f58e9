"""Canary records: written through the service's own API, read back after a cycle.

Each record carries a unique marker, so a read that finds it proves that this very
record survived, not merely that some rows exist.
"""

from __future__ import annotations

import json
import re
import urllib.request
from dataclasses import dataclass
from typing import Any

from persistaudit.config import CANARY_VARS, CanarySpec, HttpStep
from persistaudit.exceptions import CanaryError
from persistaudit.http_deadline import fetch
from persistaudit.runtime.base import ContainerHandle

RESPONSE_EXCERPT = 500  # characters of a response body kept as evidence
_PLACEHOLDER = re.compile(r"\{(" + "|".join(CANARY_VARS) + r")\}")


@dataclass(frozen=True)
class Canary:
    i: int
    marker: str

    def vars(self, run: str) -> dict[str, str]:
        return {"i": str(self.i), "marker": self.marker, "run": run}


@dataclass(frozen=True)
class ReadBack:
    found: list[Canary]
    missing: list[Canary]
    first_failure: str  # what the first missing record's read answered

    @property
    def percent(self) -> float:
        total = len(self.found) + len(self.missing)
        return 100.0 * len(self.found) / total if total else 100.0


def fill(value: Any, variables: dict[str, str]) -> Any:
    """Substitute {i}, {marker} and {run} in every string inside value."""
    if isinstance(value, str):
        return _PLACEHOLDER.sub(lambda m: variables[m.group(1)], value)
    if isinstance(value, dict):
        return {fill(k, variables): fill(v, variables) for k, v in value.items()}
    if isinstance(value, list):
        return [fill(v, variables) for v in value]
    return value


class Endpoints:
    """Base URLs of the container's published ports, looked up once per batch of requests."""

    def __init__(self, container: ContainerHandle) -> None:
        self.container = container
        self._bases: dict[int, str] = {}

    def url(self, port: int, path: str) -> str:
        if port not in self._bases:
            self._bases[port] = self.container.url(port, "")
        return self._bases[port] + path


def send(endpoints: Endpoints, step: HttpStep, variables: dict[str, str]) -> tuple[int, str]:
    """Perform one HTTP step; return status and body text (errors included, not raised).

    step.timeout bounds the whole request, however slowly the service answers.
    """
    url = endpoints.url(step.port, fill(step.path, variables))
    data = None
    headers = fill(dict(step.headers), variables)
    if step.json_body is not None:
        data = json.dumps(fill(step.json_body, variables)).encode()
        headers.setdefault("Content-Type", "application/json")
    request = urllib.request.Request(url, data=data, headers=headers, method=step.method)
    try:
        status, body = fetch(request, timeout=step.timeout)
    except (OSError, ValueError) as exc:
        return 0, f"{type(exc).__name__}: {exc}"
    return status, body.decode("utf-8", "replace")


def _check(step: HttpStep, status: int, body: str, variables: dict[str, str]) -> str | None:
    """None when the step's expectations hold, else what went wrong."""
    if status != step.expect_status:
        return (
            f"{step.method} {fill(step.path, variables)} answered {status}, expected "
            f"{step.expect_status}: {body[:200]}"
        )
    if step.expect_body_contains is not None:
        needle = fill(step.expect_body_contains, variables)
        if needle not in body:
            return (
                f"{step.method} {fill(step.path, variables)} answered without {needle!r}: "
                f"{body[:200]}"
            )
    return None


def write(container: ContainerHandle, spec: CanarySpec, run: str, start: int) -> list[Canary]:
    """Write spec.records canaries numbered from start; raise CanaryError on the first failure.

    The error carries the request (method, path, port; no headers or body, which may hold
    credentials) and the response (status, first bytes of the body) for the evidence.
    """
    written: list[Canary] = []
    endpoints = Endpoints(container)
    for i in range(start, start + spec.records):
        canary = Canary(i, f"pa-{run}-{i:06d}")
        variables = canary.vars(run)
        for step in spec.write:
            status, body = send(endpoints, step, variables)
            problem = _check(step, status, body, variables)
            if problem:
                raise CanaryError(
                    f"writing canary {canary.marker} failed after {len(written)} of "
                    f"{spec.records} were written: {problem}",
                    request=f"{step.method} {fill(step.path, variables)} (container port "
                    f"{step.port}), expecting {step.expect_status}",
                    response=(f"status {status}" if status else "no HTTP response")
                    + f"\n{body[:RESPONSE_EXCERPT]}",
                )
        written.append(canary)
    return written


def read(
    container: ContainerHandle, spec: CanarySpec, run: str, canaries: list[Canary]
) -> ReadBack:
    found: list[Canary] = []
    missing: list[Canary] = []
    first_failure = ""
    endpoints = Endpoints(container)
    for canary in canaries:
        variables = canary.vars(run)
        problem = None
        for step in spec.read:
            status, body = send(endpoints, step, variables)
            problem = _check(step, status, body, variables)
            if problem:
                break
        if problem is None:
            found.append(canary)
        else:
            missing.append(canary)
            first_failure = first_failure or problem
    return ReadBack(found, missing, first_failure)

"""The HTTP canary driver: each step is a request to one of the container's published ports."""

from __future__ import annotations

import json
import urllib.request

from persistaudit.canary import (
    PROBLEM_EXCERPT,
    RESPONSE_EXCERPT,
    Canary,
    Perform,
    ReadBack,
    StepOutcome,
    fill,
    read_records,
    write_records,
)
from persistaudit.config import CanarySpec, CanaryStep, HttpStep
from persistaudit.http_deadline import fetch
from persistaudit.runtime.base import ContainerHandle


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
            f"{step.expect_status}: {body[:PROBLEM_EXCERPT]}"
        )
    if step.expect_body_contains is not None:
        needle = fill(step.expect_body_contains, variables)
        if needle not in body:
            return (
                f"{step.method} {fill(step.path, variables)} answered without {needle!r}: "
                f"{body[:PROBLEM_EXCERPT]}"
            )
    return None


class HttpCanary:
    """Canary records written and read with HTTP requests (CanaryDriver)."""

    KIND = HttpStep.KIND

    def __init__(self, spec: CanarySpec) -> None:
        self.spec = spec

    def _perform(self, endpoints: Endpoints) -> Perform:
        def perform(step: CanaryStep, variables: dict[str, str]) -> StepOutcome:
            if not isinstance(step, HttpStep):
                raise TypeError(f"the HTTP canary driver was given a {step.KIND} step")
            status, body = send(endpoints, step, variables)
            return StepOutcome(
                _check(step, status, body, variables),
                # The request names method, path and port only: headers and the body may
                # hold credentials.
                request=f"{step.method} {fill(step.path, variables)} (container port "
                f"{step.port}), expecting {step.expect_status}",
                response=(f"status {status}" if status else "no HTTP response")
                + f"\n{body[:RESPONSE_EXCERPT]}",
            )

        return perform

    def write(self, container: ContainerHandle, run: str, start: int) -> list[Canary]:
        return write_records(self.spec, run, start, self._perform(Endpoints(container)))

    def read(self, container: ContainerHandle, run: str, canaries: list[Canary]) -> ReadBack:
        return read_records(self.spec, run, canaries, self._perform(Endpoints(container)))

    def describe(self, records: list[Canary]) -> str:
        first = self.spec.write[0]
        assert isinstance(first, HttpStep)
        return f"{first.method} {first.path} x {len(records)}"

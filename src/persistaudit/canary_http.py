"""The HTTP canary driver: each step is a request to one of the container's published ports.

A session is a cookie jar and what the spec's setup captured (a CSRF token): write() and
read() each open a fresh one, because a restart or re-create logs everyone out. Values
captured from responses are redacted from every problem and evidence text unless the
capture says `secret: false`, and so are the session's cookies.
"""

from __future__ import annotations

import http.cookiejar
import itertools
import json
import re
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from persistaudit import jsonpath
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
from persistaudit.config import SESSION_VAR, CanarySpec, CanaryStep, Capture, HttpStep
from persistaudit.exceptions import CanaryError
from persistaudit.http_deadline import Answer, exchange
from persistaudit.redact import MARKER, MIN_LENGTH
from persistaudit.runtime.base import ContainerHandle

RETRY_STATUS = 503  # Service Unavailable: the request was not processed, try again
RETRY_PAUSES_S = (0.5, 1.0, 2.0)  # between the attempts of a step answered RETRY_STATUS


class Endpoints:
    """Base URLs of the container's published ports, looked up once per batch of requests."""

    def __init__(self, container: ContainerHandle) -> None:
        self.container = container
        self._bases: dict[int, str] = {}

    def url(self, port: int, path: str) -> str:
        if port not in self._bases:
            self._bases[port] = self.container.url(port, "")
        return self._bases[port] + path


@dataclass
class Session:
    """One login's cookie jar and the values its setup captured; what must never be shown."""

    number: int = 0  # {session}: unique to this session among those its driver opened
    jar: http.cookiejar.CookieJar = field(default_factory=http.cookiejar.CookieJar)
    captured: dict[str, str] = field(default_factory=dict)  # "capture.NAME" -> value
    secrets: set[str] = field(default_factory=set)

    def hide(self, text: str) -> str:
        """text without any secret capture or cookie value of this session."""
        values = self.secrets | {c.value for c in self.jar if c.value}
        for value in sorted((v for v in values if len(v) >= MIN_LENGTH), key=len, reverse=True):
            text = text.replace(value, MARKER)
        return text


def exchange_step(
    endpoints: Endpoints,
    step: HttpStep,
    variables: dict[str, str],
    jar: http.cookiejar.CookieJar | None = None,
) -> Answer | str:
    """Perform one HTTP step: its answer, or why there is none (errors are not raised).

    step.timeout bounds the whole request, however slowly the service answers.
    """
    url = endpoints.url(step.port, fill(step.path, variables))
    data = None
    headers = fill(dict(step.headers), variables)
    if step.json_body is not None:
        data = json.dumps(fill(step.json_body, variables)).encode()
        headers.setdefault("Content-Type", "application/json")
    elif step.form is not None:
        data = urllib.parse.urlencode(fill(step.form, variables)).encode()
        headers.setdefault("Content-Type", "application/x-www-form-urlencoded")
    request = urllib.request.Request(url, data=data, headers=headers, method=step.method)
    try:
        return exchange(request, timeout=step.timeout, cookies=jar)
    except (OSError, ValueError) as exc:
        return f"{type(exc).__name__}: {exc}"


def send(endpoints: Endpoints, step: HttpStep, variables: dict[str, str]) -> tuple[int, str]:
    """Status and body text of one HTTP step without a session (0 and the error, if none)."""
    answer = exchange_step(endpoints, step, variables)
    if isinstance(answer, str):
        return 0, answer
    return answer.status, answer.body.decode("utf-8", "replace")


def _check(step: HttpStep, status: int, body: str, variables: dict[str, str]) -> str | None:
    """None when the step's expectations hold, else what went wrong."""
    said = f"{step.method} {fill(step.path, variables)}"
    if status != step.expect_status:
        return f"{said} answered {status}, expected {step.expect_status}: {body[:PROBLEM_EXCERPT]}"
    if step.expect_body_contains is not None:
        needle = fill(step.expect_body_contains, variables)
        if needle not in body:
            return f"{said} answered without {needle!r}: {body[:PROBLEM_EXCERPT]}"
    if step.expect_json:
        try:
            document = json.loads(body)
        except ValueError:
            return f"{said} answered no JSON document: {body[:PROBLEM_EXCERPT]}"
        for path, expected in step.expect_json.items():
            want = fill(expected, variables)
            got = jsonpath.lookup(document, jsonpath.parse(path))
            if got is jsonpath.MISSING:
                return f"{said} answered without {path}: {body[:PROBLEM_EXCERPT]}"
            if not _same(got, want):
                return (
                    f"{said} answered {path} = {jsonpath.as_text(got)[:PROBLEM_EXCERPT]}, "
                    f"expected {jsonpath.as_text(want)}"
                )
    return None


def _same(got: Any, want: Any) -> bool:
    """A JSON value equals what the config expects; a string expected matches the value's
    text, so that `id: "{capture.id}"` matches the number 7."""
    if isinstance(want, str) and not isinstance(got, str | dict | list):
        return jsonpath.as_text(got) == want
    return bool(got == want)


def _capture(
    capture: Capture, answer: Answer, body: str, jar: http.cookiejar.CookieJar
) -> str | None:
    """The value capture takes from an answer, or None when the answer does not have it."""
    if capture.json_path is not None:
        try:
            document = json.loads(body)
        except ValueError:
            return None
        value = jsonpath.lookup(document, jsonpath.parse(capture.json_path))
        return None if value is jsonpath.MISSING or value is None else jsonpath.as_text(value)
    if capture.regex is not None:
        match = re.search(capture.regex, body)
        if match is None:
            return None
        return match.group(1) if match.re.groups else match.group()
    if capture.header is not None:
        return answer.header(capture.header)
    return next((c.value for c in jar if c.name == capture.cookie and c.value), None)


class HttpCanary:
    """Canary records written and read with HTTP requests (CanaryDriver), in a session."""

    KIND = HttpStep.KIND

    def __init__(self, spec: CanarySpec) -> None:
        self.spec = spec
        # Secret values captured by write steps, kept with records for the reads.
        self._record_secrets: set[str] = set()
        self._sessions = itertools.count(1)  # next() is atomic: writers open theirs at once

    def _perform(self, endpoints: Endpoints, session: Session) -> Perform:
        def perform(step: CanaryStep, variables: dict[str, str]) -> StepOutcome:
            if not isinstance(step, HttpStep):
                raise TypeError(f"the HTTP canary driver was given a {step.KIND} step")
            variables = {SESSION_VAR: str(session.number), **session.captured, **variables}
            answer = exchange_step(endpoints, step, variables, session.jar)
            for pause in RETRY_PAUSES_S:
                # 503 is "busy, try again" (Prefect answers it for SQLITE_BUSY, and its own
                # clients retry): a client that gave up at once would report a busy service as
                # one that lost data. A service that stays unavailable still fails the step.
                if isinstance(answer, str) or answer.status != RETRY_STATUS:
                    break
                time.sleep(pause)
                answer = exchange_step(endpoints, step, variables, session.jar)
            status, body = (
                (0, answer)
                if isinstance(answer, str)
                else (
                    answer.status,
                    answer.body.decode("utf-8", "replace"),
                )
            )
            problem = _check(step, status, body, variables)
            captured: dict[str, str] = {}
            if problem is None and not isinstance(answer, str):
                for name, capture in step.capture.items():
                    value = _capture(capture, answer, body, session.jar)
                    if value is None:
                        problem = (
                            f"{step.method} {fill(step.path, variables)} answered without the "
                            f"value to capture as {name} ({capture.describe()}): "
                            f"{body[:PROBLEM_EXCERPT]}"
                        )
                        break
                    captured[f"capture.{name}"] = value
                    if capture.secret:
                        session.secrets.add(value)
                        self._record_secrets.add(value)
            hide = session.hide
            return StepOutcome(
                hide(problem) if problem else None,
                # The request names method, path and port only: headers and the body may
                # hold credentials.
                request=hide(
                    f"{step.method} {fill(step.path, variables)} (container port "
                    f"{step.port}), expecting {step.expect_status}"
                ),
                response=hide(
                    (f"status {status}" if status else "no HTTP response")
                    + f"\n{body[:RESPONSE_EXCERPT]}"
                ),
                captured=captured,
            )

        return perform

    def _session(self, endpoints: Endpoints, run: str) -> tuple[Session, str | None, StepOutcome]:
        """A fresh session after the spec's setup; the first failing setup step's outcome."""
        session = Session(number=next(self._sessions), secrets=set(self._record_secrets))
        perform = self._perform(endpoints, session)
        outcome = StepOutcome(None, "", "")
        for n, step in enumerate(self.spec.setup):
            outcome = perform(step, {"run": run})
            if outcome.problem:
                return session, f"setup step {n + 1} failed: {outcome.problem}", outcome
            session.captured |= outcome.captured
        return session, None, outcome

    def _opened(self, endpoints: Endpoints, run: str) -> Perform:
        """Steps performed in a fresh session; CanaryError when its setup fails."""
        session, problem, outcome = self._session(endpoints, run)
        if problem:
            raise CanaryError(
                f"opening the session before writing canaries: {problem}",
                request=outcome.request,
                response=outcome.response,
            )
        return self._perform(endpoints, session)

    def write(self, container: ContainerHandle, run: str, start: int) -> list[Canary]:
        # One session per concurrent writer, as separate clients of the service would have.
        endpoints = Endpoints(container)
        writers = min(self.spec.concurrency, self.spec.records)
        sessions = [self._opened(endpoints, run) for _ in range(writers)]
        return write_records(self.spec, run, start, sessions)

    def writer(self, container: ContainerHandle, run: str) -> Callable[[int], Canary]:
        perform = self._opened(Endpoints(container), run)
        return lambda i: write_record(self.spec, run, i, perform)

    def read(self, container: ContainerHandle, run: str, canaries: list[Canary]) -> ReadBack:
        endpoints = Endpoints(container)
        sessions: list[Perform] = []
        for _ in range(max(1, min(self.spec.concurrency, len(canaries)))):
            session, problem, _ = self._session(endpoints, run)
            if problem:
                # No record can be read without the session: each is missing, with the reason.
                return ReadBack([], list(canaries), f"opening the session to read: {problem}")
            sessions.append(self._perform(endpoints, session))
        return read_records(self.spec, run, canaries, sessions)

    def describe(self, records: list[Canary]) -> str:
        first = self.spec.write[0]
        assert isinstance(first, HttpStep)
        line = f"{first.method} {first.path} x {len(records)}"
        if self.spec.setup:
            line += f", each cycle in a session opened by {len(self.spec.setup)} setup steps"
        return line

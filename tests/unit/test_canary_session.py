"""The HTTP canary driver in a session, against a tiny local service that needs a login
(cookie), a CSRF token on writes and ids returned by earlier calls, like real APIs do."""

from __future__ import annotations

import http.server
import json
import secrets
import threading
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest

from persistaudit.canary_http import HttpCanary
from persistaudit.config import load_config
from persistaudit.exceptions import CanaryError
from persistaudit.redact import MARKER
from persistaudit.runtime.base import ContainerHandle
from tests.unit.test_canary_session_config import SESSION_CANARY, session_config
from tests.unit.test_http_deadline import Published

PASSWORD = "pw"


class Service:
    """Sessions and notes in memory; restart() logs everyone out and keeps the notes."""

    def __init__(self) -> None:
        self.sessions: dict[str, str] = {}  # session id -> csrf token
        self.notes: dict[int, dict[str, Any]] = {}
        self.lose_notes = False

    def restart(self) -> None:
        self.sessions.clear()
        if self.lose_notes:
            self.notes.clear()


class _Handler(http.server.BaseHTTPRequestHandler):
    service: Service

    def log_message(self, *args: Any) -> None:
        pass

    def _answer(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _session(self) -> str | None:
        for part in self.headers.get("Cookie", "").split(";"):
            name, _, value = part.strip().partition("=")
            if name == "sid" and value in self.service.sessions:
                return value
        return None

    def _body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length", 0)))

    def do_POST(self) -> None:
        body = self._body()
        if self.path == "/login":
            form = dict(urllib.parse.parse_qsl(body.decode()))
            if self.headers["Content-Type"] != "application/x-www-form-urlencoded":
                return self._answer(415, {"error": "form expected"})
            if form != {"user": "admin", "password": PASSWORD}:
                return self._answer(401, {"error": "bad login"})
            sid = secrets.token_hex(16)
            self.service.sessions[sid] = secrets.token_hex(16)
            return self._answer(200, {"ok": True}, {"Set-Cookie": f"sid={sid}; Path=/"})
        sid = self._session()
        if sid is None:
            return self._answer(401, {"error": "login required"})
        if self.headers.get("X-CSRF-Token") != self.service.sessions[sid]:
            return self._answer(403, {"error": "bad CSRF token"})
        note = json.loads(body)
        note_id = len(self.service.notes) + 1
        self.service.notes[note_id] = {"id": note_id, "title": note["title"]}
        return self._answer(201, self.service.notes[note_id], {"Location": f"/notes/{note_id}"})

    def do_GET(self) -> None:
        sid = self._session()
        if sid is None:
            return self._answer(401, {"error": "login required"})
        if self.path == "/csrf-token":
            token = self.service.sessions[sid]
            return self._answer(200, {"csrf": token}, {"X-Echo": f"session {sid}"})
        note = self.service.notes.get(int(self.path.rsplit("/", 1)[-1]))
        return self._answer(200, note) if note else self._answer(404, {"error": "no such note"})


@pytest.fixture
def service() -> Iterator[tuple[Service, ContainerHandle]]:
    state = Service()
    handler = type("Handler", (_Handler,), {"service": state})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state, cast(ContainerHandle, Published(server.server_address[1]))
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def driver(config_dir: Path, canary: str = SESSION_CANARY) -> HttpCanary:
    return HttpCanary(load_config(session_config(config_dir, canary)).canary)


def test_records_are_written_in_a_session_and_read_back_after_a_new_login(
    config_dir: Path, service: tuple[Service, ContainerHandle]
) -> None:
    state, container = service
    canaries = driver(config_dir)
    written = canaries.write(container, "r1", 1)
    assert [n["title"] for n in state.notes.values()] == [c.marker for c in written]
    assert [dict(c.captures) for c in written] == [{"capture.id": "1"}, {"capture.id": "2"}]
    state.restart()  # everyone is logged out: the reads log in again
    back = canaries.read(container, "r1", written)
    assert (back.found, back.missing) == (written, [])


def test_a_lost_record_is_missing_with_the_expect_json_answer(
    config_dir: Path, service: tuple[Service, ContainerHandle]
) -> None:
    state, container = service
    canaries = driver(config_dir)
    written = canaries.write(container, "r1", 1)
    state.notes[2]["title"] = "someone else's"
    state.lose_notes = True
    back = canaries.read(container, "r1", written)
    assert back.missing == written[1:]
    assert back.first_failure == "GET /notes/2 answered title = someone else's, expected " + (
        written[1].marker
    )
    state.restart()
    back = canaries.read(container, "r1", written)
    assert back.missing == written
    assert back.first_failure.startswith("GET /notes/1 answered 404, expected 200")


def test_without_the_setup_the_write_is_refused_with_the_401_quoted(
    config_dir: Path, service: tuple[Service, ContainerHandle]
) -> None:
    _, container = service
    no_setup = SESSION_CANARY.replace(SESSION_CANARY[SESSION_CANARY.index("  setup:") :], "")
    no_setup += SESSION_CANARY[SESSION_CANARY.index("  write:") :].replace(
        '{X-CSRF-Token: "{capture.token}"}', "{}"
    )
    with pytest.raises(CanaryError) as raised:
        driver(config_dir, no_setup).write(container, "r1", 1)
    assert "POST /notes answered 401, expected 201" in str(raised.value)
    assert raised.value.request == "POST /notes (container port 8080), expecting 201"
    assert raised.value.response.startswith('status 401\n{"error": "login required"}')


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (
            'password: "${PW:-pw}"',
            "password: wrong",
            "opening the session before writing canaries: setup step 1 failed: POST /login "
            "answered 401, expected 200",
        ),
        (
            "{token: {json: csrf}}",
            "{token: {json: token}}",
            "setup step 2 failed: GET /csrf-token answered without the value to capture as "
            "token (JSON path 'token')",
        ),
        (  # the CSRF header is what the write needs: without it, 403
            'headers: {X-CSRF-Token: "{capture.token}"}',
            "headers: {}",
            "POST /notes answered 403, expected 201",
        ),
        (
            "capture: {id: {json: id, secret: false}}",
            "capture: {id: {header: X-Note-Id}}",
            "POST /notes answered without the value to capture as id (header 'X-Note-Id')",
        ),
    ],
)
def test_each_failing_step_is_a_canary_error_naming_it(
    config_dir: Path,
    service: tuple[Service, ContainerHandle],
    old: str,
    new: str,
    expected: str,
) -> None:
    _, container = service
    assert old in SESSION_CANARY
    with pytest.raises(CanaryError) as raised:
        driver(config_dir, SESSION_CANARY.replace(old, new)).write(container, "r1", 1)
    assert expected in str(raised.value)
    assert raised.value.response.startswith("status ")


@pytest.mark.parametrize(
    "capture",
    [
        "{token: {json: csrf}}",
        '{token: {regex: \'"csrf": "([0-9a-f]+)"\'}}',
        "{token: {regex: '[0-9a-f]{32}'}}",
    ],
)
def test_json_and_regex_captures_take_the_token(
    config_dir: Path, service: tuple[Service, ContainerHandle], capture: str
) -> None:
    state, container = service
    canary = SESSION_CANARY.replace("{token: {json: csrf}}", capture)
    written = driver(config_dir, canary).write(container, "r1", 1)
    assert len(written) == len(state.notes) == 2


def test_header_and_cookie_captures_and_their_redaction(
    config_dir: Path, service: tuple[Service, ContainerHandle]
) -> None:
    state, container = service
    # The session id (from the cookie jar) and a header quoting it are captured; a step that
    # expects one where the other is never shows either, nor the CSRF token.
    canary = SESSION_CANARY.replace(
        "capture: {token: {json: csrf}}}",
        "capture: {token: {json: csrf}, sid: {cookie: sid}, echo: {header: X-Echo}}}\n"
        "    - path: /csrf-token\n      port: 8080\n"
        '      expect_json: {csrf: "{capture.echo}"}\n',
    )
    with pytest.raises(CanaryError) as raised:
        driver(config_dir, canary).write(container, "r1", 1)
    (sid,) = state.sessions
    token = state.sessions[sid]
    shown = f"{raised.value} {raised.value.request} {raised.value.response}"
    assert f"setup step 3 failed: GET /csrf-token answered csrf = {MARKER}, expected " in shown
    assert sid not in shown
    assert token not in shown
    # The captures hold what the service sent: the header quotes the cookie's session id.
    canary = canary.replace('{csrf: "{capture.echo}"}', '{csrf: "{capture.token}"}')
    canary = canary.replace('json: {title: "{marker}"}', 'json: {title: "{capture.echo}"}')
    canary = canary.replace(
        'expect_json: {title: "{marker}"', 'expect_json: {title: "session {capture.sid}"'
    )
    canaries = driver(config_dir, canary)
    written = canaries.write(container, "r2", 1)
    sid = list(state.sessions)[-1]
    assert [n["title"] for n in state.notes.values()] == [f"session {sid}"] * 2
    state.restart()
    # The reads log in again: a new session id, so the titles no longer match it.
    back = canaries.read(container, "r2", written)
    assert back.missing == written
    assert back.first_failure == (f"GET /notes/1 answered title = {MARKER}, expected {MARKER}")
    assert not any(s in back.first_failure for s in [sid, *state.sessions])


def test_a_setup_that_fails_after_the_cycle_makes_every_record_missing_with_why(
    config_dir: Path, service: tuple[Service, ContainerHandle]
) -> None:
    state, container = service
    canaries = driver(config_dir)
    written = canaries.write(container, "r1", 1)
    state.restart()
    global PASSWORD
    PASSWORD, old = "changed-by-a-reset", PASSWORD
    try:
        back = canaries.read(container, "r1", written)
    finally:
        PASSWORD = old
    assert back.missing == written
    assert back.first_failure.startswith(
        "opening the session to read: setup step 1 failed: POST /login answered 401"
    )


def test_a_step_answered_503_is_retried_and_one_that_stays_503_fails(
    config_dir: Path, service: tuple[Service, ContainerHandle], monkeypatch: pytest.MonkeyPatch
) -> None:
    from persistaudit import canary_http

    monkeypatch.setattr(canary_http, "RETRY_PAUSES_S", (0.01, 0.01))
    state, container = service
    busy = {"left": 2}
    original = _Handler.do_POST

    def sometimes_busy(self: _Handler) -> None:
        if self.path == "/notes" and busy["left"] > 0:
            busy["left"] -= 1
            self._body()
            return self._answer(503, {"exception_message": "Service Unavailable"})
        return original(self)

    monkeypatch.setattr(_Handler, "do_POST", sometimes_busy)
    written = driver(config_dir).write(container, "r1", 1)
    assert len(written) == len(state.notes) == 2
    busy["left"] = 3  # more than the retries
    with pytest.raises(CanaryError, match="POST /notes answered 503, expected 201"):
        driver(config_dir).write(container, "r2", 1)


PER_CLIENT_CANARY = """\
canary:
  records: 2
  setup:
    - {path: "/csrf-token?client=pa-{run}-{session}", port: 8080, capture: {token: {json: csrf}}}
  write:
    - method: POST
      path: /notes
      port: 8080
      headers: {X-CSRF-Token: "{capture.token}", X-CSRF-Client: "pa-{run}-{session}"}
      json: {title: "{marker}"}
      expect_status: 201
      capture: {id: {json: id, secret: false}}
  read:
    - path: /notes/{capture.id}
      port: 8080
      expect_json: {title: "{marker}", id: "{capture.id}"}
"""


class PerClient(_Handler):
    """Prefect's CSRF protection: one token per client id, replaced each time one is fetched
    for that client, so two sessions sharing a client id refuse each other's writes."""

    tokens: dict[str, str]

    def do_GET(self) -> None:
        if self.path.startswith("/csrf-token?client="):
            client = self.path.partition("=")[2]
            self.tokens[client] = secrets.token_hex(16)
            return self._answer(200, {"csrf": self.tokens[client]})
        note = self.service.notes.get(int(self.path.rsplit("/", 1)[-1]))
        return self._answer(200, note) if note else self._answer(404, {"error": "no such note"})

    def do_POST(self) -> None:
        body = self._body()
        client = self.headers.get("X-CSRF-Client", "")
        if self.tokens.get(client) != self.headers.get("X-CSRF-Token"):
            return self._answer(403, {"detail": "Invalid CSRF token or client identifier."})
        note_id = len(self.service.notes) + 1
        self.service.notes[note_id] = {"id": note_id, "title": json.loads(body)["title"]}
        return self._answer(201, self.service.notes[note_id])


def test_concurrent_writers_each_get_their_own_session_number(config_dir: Path) -> None:
    """The crash load opens one session per writer before any writes: {session} keeps a
    per-client token of one from replacing the other's."""
    state = Service()
    handler = type("Handler", (PerClient,), {"service": state, "tokens": {}})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        container = cast(ContainerHandle, Published(server.server_address[1]))
        canaries = driver(config_dir, PER_CLIENT_CANARY)
        first, second = canaries.writer(container, "r1"), canaries.writer(container, "r1")
        written = [first(1), second(2), first(3)]
        assert sorted(handler.tokens) == ["pa-r1-1", "pa-r1-2"]
        back = canaries.read(container, "r1", written)
        assert (len(back.found), back.missing) == (3, [])
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


class Serialised(_Handler):
    """The session service, counting logins; one request at a time changes its notes."""

    lock = threading.Lock()
    logins = 0

    def do_POST(self) -> None:
        with self.lock:
            if self.path == "/login":
                type(self).logins += 1
            super().do_POST()


def test_concurrent_canary_writers_and_readers_each_log_in_once(config_dir: Path) -> None:
    """canary.concurrency 3: three sessions write the records (each logged in by the setup),
    each record keeps its own captured id, and three new sessions read them all back."""
    state = Service()
    handler = type("Handler", (Serialised,), {"service": state, "logins": 0})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        container = cast(ContainerHandle, Published(server.server_address[1]))
        canary = SESSION_CANARY.replace("records: 2\n", "records: 12\n  concurrency: 3\n")
        canaries = driver(config_dir, canary)
        written = canaries.write(container, "r1", 1)
        assert handler.logins == 3
        assert [c.i for c in written] == list(range(1, 13))
        titles = {n["id"]: n["title"] for n in state.notes.values()}
        assert [titles[int(dict(c.captures)["capture.id"])] for c in written] == [
            c.marker for c in written
        ]
        state.restart()
        back = canaries.read(container, "r1", written)
        assert (back.found, back.missing) == (written, [])
        assert handler.logins == 6
    finally:
        server.shutdown()
        server.server_close()
        thread.join()

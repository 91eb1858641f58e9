"""A service that answers a byte at a time cannot hold readiness or a canary step past its
timeout: every HTTP request has one deadline in all, not one per socket read.

The servers are local threads on 127.0.0.1; nothing here needs Docker.
"""

from __future__ import annotations

import http.cookiejar
import http.server
import socket
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest

from persistaudit import http_deadline
from persistaudit.canary_http import Endpoints, send
from persistaudit.config import HttpStep
from persistaudit.exceptions import TargetBlocked
from persistaudit.http_deadline import exchange, fetch
from persistaudit.readiness import ContainerState, HttpWait, wait_ready

DRIP_EVERY = 0.2  # far below urllib's per-read timeout: only a total deadline stops it
ANSWER = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


@dataclass
class Dripper:
    """A TCP server that reads a request, then sends `answer` one byte every DRIP_EVERY s."""

    answer: bytes
    head_fast: bool = False  # send the headers at once and drip only the body
    port: int = 0
    stop: threading.Event = field(default_factory=threading.Event)

    def serve(self, listener: socket.socket) -> None:
        listener.settimeout(0.1)
        while not self.stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            threading.Thread(target=self._drip, args=(conn,), daemon=True).start()

    def _drip(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(5)
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = conn.recv(1024)
                if not chunk:
                    return
                data += chunk
            answer = self.answer
            if self.head_fast:
                head, _, answer = answer.partition(b"\r\n\r\n")
                conn.sendall(head + b"\r\n\r\n")
            while not self.stop.is_set():
                for byte in answer:
                    if self.stop.wait(DRIP_EVERY):
                        return
                    try:
                        conn.sendall(bytes([byte]))
                    except OSError:
                        return
                answer = b" "  # then keep dripping, forever


@pytest.fixture
def dripper() -> Iterator[Callable[..., Dripper]]:
    started: list[tuple[Dripper, socket.socket, threading.Thread]] = []

    def start(answer: bytes = ANSWER, head_fast: bool = False) -> Dripper:
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        server = Dripper(answer, head_fast, listener.getsockname()[1])
        thread = threading.Thread(target=server.serve, args=(listener,), daemon=True)
        thread.start()
        started.append((server, listener, thread))
        return server

    yield start
    for server, listener, thread in started:
        server.stop.set()
        thread.join()
        listener.close()


@dataclass
class Published:
    """A running container whose port is published at a local test server."""

    port: int
    name: str = "dripping"

    def state(self) -> ContainerState:
        return ContainerState("running", 0, 0, "")

    def logs(self, tail: int = 40, current_run: bool = False) -> list[str]:
        return ["serving"]

    def exec(self, command: list[str], timeout: float | None = None) -> tuple[int, str]:
        return 1, ""

    def url(self, port: int, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"


def finishes_within(seconds: float, work: Callable[[], object]) -> tuple[float, object]:
    """Run work in a thread; fail (instead of hanging the suite) if it runs past seconds."""
    outcome: list[object] = []

    def run() -> None:
        try:
            outcome.append(work())
        except BaseException as exc:
            outcome.append(exc)

    started = time.monotonic()
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"still running after {seconds} s"
    return time.monotonic() - started, outcome[0]


def test_readiness_gives_up_on_a_dripping_server_within_its_timeout(
    dripper: Callable[..., Dripper],
) -> None:
    server = dripper()
    wait = HttpWait(port=8080, path="/health", status=200)
    took, outcome = finishes_within(
        8, lambda: wait_ready(Published(server.port), wait, timeout=1, interval=0.05)
    )
    # Within the timeout and a little: a poll never outlasts what is left of the wait
    # (2 s at most), whatever the server does.
    assert took < 1 + 0.7
    assert isinstance(outcome, TargetBlocked)
    assert outcome.reason == "timeout"
    assert "not ready after 1 s (waiting for HTTP GET /health on port 8080 answers 200" in str(
        outcome
    )


def test_a_canary_step_against_a_dripping_server_ends_at_its_timeout(
    dripper: Callable[..., Dripper],
) -> None:
    server = dripper(head_fast=True, answer=b"HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\nslow")
    step = HttpStep(path="/notes?title={marker}", port=8080, timeout=1)
    endpoints = Endpoints(Published(server.port))
    took, outcome = finishes_within(8, lambda: send(endpoints, step, {"marker": "m"}))
    assert took < 1 + 1.0
    assert outcome == (0, "TimeoutError: no complete answer within 1 s")


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path == "/moved":
            self.send_response(302)
            self.send_header("Location", "/made")
            self.end_headers()
            return
        status = 201 if self.path == "/made" else 404
        body = f"answer to {self.path}".encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def plain_server() -> Iterator[int]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def test_ordinary_answers_are_unchanged(plain_server: int) -> None:
    base = f"http://127.0.0.1:{plain_server}"
    assert fetch(f"{base}/made", timeout=5) == (201, b"answer to /made")
    assert fetch(f"{base}/nope", timeout=5) == (404, b"answer to /nope")  # an answer, not raised
    assert fetch(f"{base}/moved", timeout=5) == (201, b"answer to /made")  # redirects followed
    assert fetch(f"{base}/made", timeout=5, max_body=6) == (201, b"answer")
    with pytest.raises(OSError, match="Connection refused"):
        fetch("http://127.0.0.1:9/", timeout=5)


def test_a_server_that_is_not_http_is_an_oserror_not_a_traceback(
    dripper: Callable[..., Dripper],
) -> None:
    server = dripper(head_fast=True, answer=b"SSH-2.0-OpenSSH\r\n\r\n")
    with pytest.raises(OSError, match="not a valid HTTP answer"):
        fetch(f"http://127.0.0.1:{server.port}/", timeout=5)


def test_requests_share_one_opener_per_cookie_jar_and_each_keeps_its_own_deadline(
    plain_server: int, dripper: Callable[..., Dripper], monkeypatch: pytest.MonkeyPatch
) -> None:
    """urllib's opener is built once, not for every request; the deadline and the cookie jar
    are each request's own, and a redirect keeps them."""
    monkeypatch.setattr(http_deadline, "_opener", [])
    built: list[int] = []
    build = urllib.request.build_opener

    def counted(*handlers: urllib.request.BaseHandler) -> urllib.request.OpenerDirector:
        built.append(len(handlers))
        return build(*handlers)

    monkeypatch.setattr(urllib.request, "build_opener", counted)
    base = f"http://127.0.0.1:{plain_server}"
    jar = http.cookiejar.CookieJar()
    for _ in range(5):
        assert fetch(f"{base}/moved", timeout=5) == (201, b"answer to /made")
        assert exchange(f"{base}/made", timeout=5, cookies=jar).status == 201
    assert built == [2]  # one opener, with the deadline and the cookie handlers

    slow = dripper()
    took, outcome = finishes_within(8, lambda: send_slowly(slow.port))
    assert took < 1 + 1.0
    assert outcome == "TimeoutError"
    assert fetch(f"{base}/made", timeout=5) == (201, b"answer to /made")  # its own deadline


def send_slowly(port: int) -> str:
    try:
        fetch(f"http://127.0.0.1:{port}/", timeout=1)
    except TimeoutError:
        return "TimeoutError"
    return "answered"

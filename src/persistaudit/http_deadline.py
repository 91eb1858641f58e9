"""HTTP requests with one deadline for the whole exchange, not one per socket read.

urllib's timeout applies to each read: a server that sends a header byte a second keeps a
request alive forever. Here every read of a response shares the request's deadline, so a
readiness poll or a canary step ends on time whatever the service under audit does. The
rest is urllib's (redirects, proxies from the environment), as before.
"""

from __future__ import annotations

import contextvars
import functools
import http.client
import http.cookiejar
import io
import socket
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

MAX_BODY = 16 * 1024**2  # read of a response body; the rest is never read


class _DeadlineReader(io.RawIOBase):
    """The socket's reads, each allowed only the time left until the deadline."""

    def __init__(self, sock: socket.socket, deadline: float) -> None:
        self._sock = sock
        self._raw = sock.makefile("rb", buffering=0)
        self._deadline = deadline

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        remaining = self._deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("the deadline passed")
        self._sock.settimeout(remaining)
        n = self._raw.readinto(buffer)
        return 0 if n is None else n

    def close(self) -> None:
        self._raw.close()
        super().close()


class _Response(http.client.HTTPResponse):
    def __init__(self, sock: socket.socket, *args: Any, deadline: float, **kwargs: Any) -> None:
        super().__init__(sock, *args, **kwargs)
        plain = self.fp
        self.fp = io.BufferedReader(_DeadlineReader(sock, deadline))
        plain.close()


class _Connection(http.client.HTTPConnection):
    def __init__(self, host: str, *, deadline: float, **kwargs: Any) -> None:
        # Connecting and sending are bounded by the socket timeout: the time left.
        kwargs["timeout"] = max(deadline - time.monotonic(), 0.001)
        super().__init__(host, **kwargs)
        self.response_class = functools.partial(_Response, deadline=deadline)  # type: ignore[assignment]


# The deadline and the cookie jar of the exchange under way in this thread: one opener
# serves every request (building urllib's opener, its handlers and the proxies from the
# environment, costs more than a request to a local service), and a redirect's new request
# shares both.
_deadline: contextvars.ContextVar[float] = contextvars.ContextVar("persistaudit_http_deadline")
_jar: contextvars.ContextVar[http.cookiejar.CookieJar | None] = contextvars.ContextVar(
    "persistaudit_http_cookies", default=None
)


class _Handler(urllib.request.HTTPHandler):
    def http_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        connection = functools.partial(_Connection, deadline=_deadline.get())
        return self.do_open(connection, req)


class _Cookies(urllib.request.HTTPCookieProcessor):
    """urllib's cookie handling, with the jar of the exchange under way."""

    def __init__(self) -> None:
        super().__init__(http.cookiejar.CookieJar())

    def http_request(self, request: urllib.request.Request) -> urllib.request.Request:
        jar = _jar.get()
        if jar is not None:
            jar.add_cookie_header(request)
        return request

    def http_response(
        self, request: urllib.request.Request, response: http.client.HTTPResponse
    ) -> http.client.HTTPResponse:
        jar = _jar.get()
        if jar is not None:
            jar.extract_cookies(response, request)
        return response

    https_request = http_request
    https_response = http_response


_opener: list[urllib.request.OpenerDirector] = []  # built on first use
_opener_lock = threading.Lock()


def opener() -> urllib.request.OpenerDirector:
    """urllib's opener with the deadline and cookie handlers, built once."""
    with _opener_lock:
        if not _opener:
            _opener.append(urllib.request.build_opener(_Handler(), _Cookies()))
        return _opener[0]


@dataclass(frozen=True)
class Answer:
    """One HTTP answer: status, headers (as sent, repeats kept) and the body's first bytes."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        """The first value of a header, by case-insensitive name."""
        return next((v for k, v in self.headers if k.lower() == name.lower()), None)


def fetch(
    request: urllib.request.Request | str, *, timeout: float, max_body: int = MAX_BODY
) -> tuple[int, bytes]:
    """Status and body (its first max_body bytes) of one request, all within timeout seconds.

    An HTTP error status is an answer, returned like any other. Raises TimeoutError when the
    deadline passes, OSError when there is no valid answer, ValueError for a bad URL.
    """
    answer = exchange(request, timeout=timeout, max_body=max_body)
    return answer.status, answer.body


def exchange(
    request: urllib.request.Request | str,
    *,
    timeout: float,
    max_body: int = MAX_BODY,
    cookies: http.cookiejar.CookieJar | None = None,
) -> Answer:
    """fetch(), with the answer's headers, and cookies kept in (and sent from) a jar."""
    deadline = _deadline.set(time.monotonic() + timeout)
    jar = _jar.set(cookies)
    try:
        try:
            with opener().open(request, timeout=timeout) as response:
                return Answer(
                    int(response.status), list(response.headers.items()), response.read(max_body)
                )
        except urllib.error.HTTPError as exc:
            with exc:
                return Answer(int(exc.code), list(exc.headers.items()), exc.read(max_body))
    except (TimeoutError, urllib.error.URLError) as exc:
        if isinstance(exc, TimeoutError) or isinstance(exc.reason, TimeoutError):
            raise TimeoutError(f"no complete answer within {timeout:g} s") from None
        raise
    except http.client.HTTPException as exc:
        raise OSError(f"not a valid HTTP answer: {type(exc).__name__}: {exc}") from None
    finally:
        _jar.reset(jar)
        _deadline.reset(deadline)

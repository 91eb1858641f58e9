"""A command run in a container with a deadline: standard input in, bounded output out.

docker exec attached through the engine's hijacked connection: stdin (if any) is written and
its side of the connection shut, so the command sees end of file; the multiplexed stdout and
stderr frames are read until the command closes them. Everything waits on select() against
one deadline, so a command that never reads, never writes or never ends cannot hold the
caller; output past MAX_OUTPUT is read and dropped, so a chatty one cannot fill memory.
"""

from __future__ import annotations

import contextlib
import select
import socket
import ssl
import struct
import time
from typing import Any

import docker.errors

MAX_OUTPUT = 1024 * 1024  # bytes of a command's output kept (stdout and stderr together)
TIMED_OUT = 124  # the exit code of a command still running at its deadline (as timeout(1))
EXEC_FAILED = 126  # the engine could not run it (no such container, not running, ...)
_CHUNK = 65536
_HEADER = struct.Struct(">BxxxL")  # stream type, 3 bytes padding, frame length
_WOULD_BLOCK = (BlockingIOError, InterruptedError, ssl.SSLWantReadError, ssl.SSLWantWriteError)


class _Frames:
    """Reassembles the engine's stdout/stderr frames from the byte stream, keeping at most
    MAX_OUTPUT bytes of payload and counting what it dropped."""

    def __init__(self) -> None:
        self._header = b""
        self._left = 0  # bytes of the current frame's payload still to come
        self.output = bytearray()
        self.dropped = 0

    def feed(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            if self._left == 0:
                need = _HEADER.size - len(self._header)
                self._header += bytes(view[:need])
                view = view[need:]
                if len(self._header) < _HEADER.size:
                    return
                _stream, self._left = _HEADER.unpack(self._header)
                self._header = b""
                continue
            payload = view[: self._left]
            self._left -= len(payload)
            view = view[len(payload) :]
            self._take(bytes(payload))

    def _take(self, payload: bytes) -> None:
        room = MAX_OUTPUT - len(self.output)
        self.output += payload[:room]
        self.dropped += max(0, len(payload) - room)

    def text(self) -> str:
        text = self.output.decode("utf-8", "replace")
        if self.dropped:
            text += f"\n[{self.dropped:,} more bytes of output not kept]"
        return text


def _drain_buffered(sock: Any, frames: _Frames) -> None:
    """Feed what http.client read past the upgrade answer's headers into its buffer.

    The engine may send the command's first output right behind the headers; reading only
    from the socket would lose it. Needs the socket non-blocking: peek then reads nothing new.
    """
    response = getattr(sock, "_response", None)
    reader = getattr(getattr(getattr(response, "raw", None), "_fp", None), "fp", None)
    if reader is None or not hasattr(reader, "peek"):
        return
    try:
        buffered = reader.peek(_CHUNK)
    except (OSError, ValueError):
        return
    if buffered:
        frames.feed(reader.read(len(buffered)))


def exec_attached(
    api: Any, container_id: str, command: list[str], timeout: float | None, stdin: bytes | None
) -> tuple[int, str]:
    """Run command in the container; (exit code, output). Past timeout: (124, what it said).

    api is the Docker SDK's low-level client. The command is not killed at the deadline (the
    engine cannot): it ends with the container.
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    frames = _Frames()
    try:
        exec_id = api.exec_create(container_id, command, stdin=stdin is not None)["Id"]
        handle = api.exec_start(exec_id, socket=True)
    except docker.errors.APIError as exc:
        return EXEC_FAILED, str(exc.explanation)
    raw = getattr(handle, "_sock", handle)
    if not isinstance(raw, socket.socket):
        handle.close()
        return EXEC_FAILED, "the engine's connection is no socket: cannot run commands attached"
    try:
        raw.setblocking(False)
        _drain_buffered(handle, frames)
        if not _pump(raw, stdin or b"", stdin is not None, frames, deadline):
            return TIMED_OUT, _timed_out(frames, timeout)
    finally:
        handle.close()
        raw.close()
    # The output ended; the engine records the exit code a moment later.
    while True:
        try:
            info = api.exec_inspect(exec_id)
        except docker.errors.APIError as exc:
            return EXEC_FAILED, str(exc.explanation)
        if not info.get("Running") and info.get("ExitCode") is not None:
            return int(info["ExitCode"]), frames.text()
        if deadline is not None and time.monotonic() > deadline:
            return TIMED_OUT, _timed_out(frames, timeout)
        time.sleep(0.02)


def _timed_out(frames: _Frames, timeout: float | None) -> str:
    said = frames.text()
    return f"still running after {timeout:g} s" + (f"; its output so far:\n{said}" if said else "")


def _pump(
    raw: socket.socket, data: bytes, has_stdin: bool, frames: _Frames, deadline: float | None
) -> bool:
    """Write data then shut the write side; read frames until end of file. False at deadline."""
    sent = 0
    open_for_write = has_stdin
    if has_stdin and not data:
        raw.shutdown(socket.SHUT_WR)
        open_for_write = False
    while True:
        left = None if deadline is None else deadline - time.monotonic()
        if left is not None and left <= 0:
            return False
        readable, writable, _ = select.select([raw], [raw] if open_for_write else [], [], left)
        if writable:
            try:
                sent += raw.send(data[sent : sent + _CHUNK])
            except _WOULD_BLOCK:
                pass
            except OSError:  # the command ended without reading all of it
                sent = len(data)
            if sent >= len(data):
                with contextlib.suppress(OSError):
                    raw.shutdown(socket.SHUT_WR)
                open_for_write = False
        if readable:
            try:
                chunk = raw.recv(_CHUNK)
            except _WOULD_BLOCK:
                continue
            except OSError:
                return True  # the engine closed the connection: the output is over
            if not chunk:
                return True
            frames.feed(chunk)

"""The engine's multiplexed exec stream, reassembled within a bound (no Docker needed).

The deadline and standard-input behaviour are proven on a real container in
tests/e2e/test_exec_canary.py.
"""

from __future__ import annotations

import struct

import pytest

from persistaudit.runtime import attached_exec
from persistaudit.runtime.attached_exec import _Frames


def frame(stream: int, payload: bytes) -> bytes:
    return struct.pack(">BxxxL", stream, len(payload)) + payload


def test_frames_split_anywhere_are_joined_in_order() -> None:
    data = frame(1, b"out ") + frame(2, b"err ") + frame(1, b"") + frame(1, b"again")
    for size in (1, 3, 8, 9, len(data)):
        frames = _Frames()
        for i in range(0, len(data), size):
            frames.feed(data[i : i + size])
        assert frames.text() == "out err again"


def test_output_past_the_bound_is_counted_not_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(attached_exec, "MAX_OUTPUT", 10)
    frames = _Frames()
    frames.feed(frame(1, b"0123456789abcdef") + frame(2, b"xyz"))
    assert bytes(frames.output) == b"0123456789"
    assert frames.dropped == 9
    assert frames.text() == "0123456789\n[9 more bytes of output not kept]"

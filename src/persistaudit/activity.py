"""What the audit is doing right now, for a live status: the stage, and what it waits for.

The layers that wait (readiness, stops) and the stage registry announce here; a display
listens. Nothing listens unless a live status is shown, so announcing costs nothing. Kept
free of imports: any layer may use it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

# (kind, text): kind is "stage" or "waiting"; text None when it is over.
Listener = Callable[[str, "str | None"], None]
_listeners: list[Listener] = []


def listen(listener: Listener) -> Callable[[], None]:
    """Call listener on every announcement from now on; returns what stops it."""
    _listeners.append(listener)
    return lambda: _listeners.remove(listener) if listener in _listeners else None


def announce(kind: str, text: str | None) -> None:
    for listener in list(_listeners):
        listener(kind, text)


@contextlib.contextmanager
def during(kind: str, text: str) -> Iterator[None]:
    """Announce text for the block: a stage that runs, or something waited for."""
    announce(kind, text)
    try:
        yield
    finally:
        announce(kind, None)

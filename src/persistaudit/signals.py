"""SIGINT, SIGTERM and SIGHUP all stop a run the same way, and cannot cut its clean-up short.

A CI system cancels a job with SIGTERM (or SIGHUP when its terminal goes away), a user with
Ctrl-C. The first of these signals raises KeyboardInterrupt, the one path that pytest and
the `finally` blocks already know; which signal it was is remembered for the exit code
(128 + its number). Later signals never raise: the run is already stopping, and a second
exception would abort the clean-up of the first. Inside `shielded()` even the first signal
waits until the block is done. After `settle()`, the point of no return, none raises.

Kept import-light: the command's entry point installs the handlers before anything else.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from collections.abc import Iterator
from types import FrameType

HANDLED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

_received: int | None = None  # the first signal that arrived
_pending = False  # it arrived inside a shield, which raises it when done (resume=True)
_depth = 0  # nesting of shielded() blocks
_settled = False


def _handler(signum: int, _frame: FrameType | None) -> None:
    global _received, _pending
    if _received is not None:
        return  # a second signal: the run is already stopping
    _received = signum
    if _settled:
        return
    if _depth:
        _pending = True
        return
    raise KeyboardInterrupt


def _unraisable(unraisable: sys.UnraisableHookArgs) -> None:
    """An interrupt that a finalizer swallowed (a connection pool closing when the signal came)
    is no error to print: the signal is remembered and stops the run at its next check."""
    if isinstance(unraisable.exc_value, KeyboardInterrupt) and _received is not None:
        return
    _previous_unraisable(unraisable)


_previous_unraisable = sys.unraisablehook


def install() -> dict[int, object]:
    """Handle the three signals from now on (main thread only); returns the previous handlers."""
    global _previous_unraisable
    if threading.current_thread() is not threading.main_thread():
        return {}
    if sys.unraisablehook is not _unraisable:
        _previous_unraisable = sys.unraisablehook
        sys.unraisablehook = _unraisable
    return {sig: signal.signal(sig, _handler) for sig in HANDLED}


def installed() -> bool:
    return all(signal.getsignal(sig) is _handler for sig in HANDLED)


def restore(previous: dict[int, object]) -> None:
    for sig, handler in previous.items():
        signal.signal(sig, handler)  # type: ignore[arg-type]


def reset() -> None:
    """Forget what arrived (a new run in the same process, e.g. in tests)."""
    global _received, _pending, _depth, _settled
    _received, _pending, _depth, _settled = None, False, 0, False


def received() -> int | None:
    """The first signal that arrived, or None."""
    return _received


def name(signum: int | None = None) -> str:
    sig = signum if signum is not None else _received
    return signal.Signals(sig).name if sig is not None else "an interrupt"


def exit_code() -> int:
    """128 + the signal's number, as a shell reports a process ended by it (130 for Ctrl-C)."""
    return 128 + (_received if _received is not None else signal.SIGINT)


def note_interrupt() -> None:
    """A KeyboardInterrupt that came without a handled signal (default handler): a SIGINT."""
    global _received
    if _received is None:
        _received = signal.SIGINT


def check() -> None:
    """Raise KeyboardInterrupt when a signal arrived, even one swallowed along the way."""
    if _received is not None and not _settled:
        raise KeyboardInterrupt


def settle() -> None:
    """The point of no return: from here on a signal stops nothing.

    The signals are then ignored by the process itself, because Python's shutdown puts the
    default action back for handled ones, which would kill the exiting process with them.
    """
    global _settled
    _settled = True
    forget_caught_interrupt()
    if installed():
        for sig in HANDLED:
            signal.signal(sig, signal.SIG_IGN)


def forget_caught_interrupt() -> None:
    """Let the process exit with its own code after a KeyboardInterrupt it caught.

    CPython marks a KeyboardInterrupt that went through an eval() or exec() of a string
    (dataclasses and namedtuples are made so, on import) as unhandled even when it was
    caught later, and then ends the process with SIGINT at exit, whatever its exit code
    (130 instead of 143). The next string it evaluates clears that mark.
    """
    eval("None")


@contextlib.contextmanager
def shielded(*, resume: bool = False) -> Iterator[None]:
    """Signals wait while the block runs: clean-up finishes, a creation is known when done.

    With resume, a signal that arrived meanwhile is raised when the block ends (the run stops
    right after an engine call that creates something, never in the middle of it). Without
    it, the signal stays recorded for the next check().
    """
    global _depth, _pending
    _depth += 1
    try:
        yield
    finally:
        _depth -= 1
        if _depth == 0 and _pending:
            _pending = False
            if resume and not _settled:
                raise KeyboardInterrupt

"""Independent work done beside the main line of a stage, joined before its result is used.

An audit mostly waits on the engine. Two steps that neither read nor change what the other
does (listing the container layer while a paused snapshot is copied out) can wait at the same
time. The work never outlives the block that started it: leaving the block, by an exception
or an interrupt too, waits for it to end, so nothing keeps talking to the engine after the
stage (or the clean-up) has moved on.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

_T = TypeVar("_T")


@contextlib.contextmanager
def beside(work: Callable[[], _T]) -> Iterator[Callable[[], _T]]:
    """Start work in a thread and run the block meanwhile; yields a function that waits for
    work's result (or raises its exception). Work that the block never asks for is joined
    on leaving, and its result or exception dropped."""
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="persistaudit-beside")
    try:
        future = pool.submit(work)
        yield future.result
    finally:
        pool.shutdown(wait=True)


@contextlib.contextmanager
def releasing(event: threading.Event) -> Iterator[None]:
    """Set event on leaving the block however it is left: work beside it that waits for the
    event is never left waiting (beside() would wait for it in turn)."""
    try:
        yield
    finally:
        event.set()

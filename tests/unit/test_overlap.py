"""overlap.beside: work done while a block runs, never outliving it."""

from __future__ import annotations

import threading
import time

import pytest

from persistaudit.overlap import beside


def test_the_work_runs_while_the_block_does() -> None:
    started = threading.Event()

    def work() -> str:
        started.set()
        return "listed"

    with beside(work) as result:
        assert started.wait(5)  # under way before the block asks for it
        assert result() == "listed"


def test_leaving_the_block_by_an_exception_waits_for_the_work() -> None:
    done = threading.Event()

    def work() -> None:
        time.sleep(0.05)
        done.set()

    with pytest.raises(KeyError), beside(work):
        raise KeyError("the snapshot failed")
    assert done.is_set()  # joined, not left talking to the engine


def test_an_exception_of_the_work_is_raised_where_its_result_is_asked_for() -> None:
    def work() -> None:
        raise ValueError("the engine said no")

    with beside(work) as result, pytest.raises(ValueError, match="the engine said no"):
        result()


def test_work_whose_result_is_never_asked_for_is_dropped_quietly() -> None:
    def work() -> None:
        raise ValueError("never seen")

    with beside(work):
        pass

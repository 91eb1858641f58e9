"""canary.concurrency: records written and read by several writers at once, with the same
results (order, first failure, missing records) as one after another."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from pydantic import ValidationError

from persistaudit.canary import Canary, StepOutcome, read_records, write_records
from persistaudit.config import CanarySpec, CanaryStep
from persistaudit.exceptions import CanaryError

STEPS: dict[str, Any] = {
    "write": [{"method": "POST", "path": "/notes", "port": 8080, "expect_status": 201}],
    "read": [{"method": "GET", "path": "/notes?title={marker}", "port": 8080}],
}


def spec(records: int, concurrency: int = 1) -> CanarySpec:
    return CanarySpec.model_validate({"records": records, "concurrency": concurrency, **STEPS})


class Service:
    """A thread-safe stand-in for the service: records which markers it stored, how many
    requests were in flight at most, and refuses the writes of the given record numbers."""

    def __init__(self, refuse: frozenset[int] = frozenset(), pause: float = 0.002) -> None:
        self.refuse = refuse
        self.pause = pause
        self.stored: set[str] = set()
        self.attempted: list[int] = []
        self.busy = 0
        self.most = 0
        self.lock = threading.Lock()

    def perform(self, step: CanaryStep, variables: dict[str, str]) -> StepOutcome:
        with self.lock:
            self.busy += 1
            self.most = max(self.most, self.busy)
        time.sleep(self.pause)
        with self.lock:
            self.busy -= 1
            i, marker = int(variables["i"]), variables["marker"]
            if step.method == "POST":  # type: ignore[union-attr]
                self.attempted.append(i)
                if i in self.refuse:
                    return StepOutcome(f"POST /notes answered 500 for {i}", "POST", "500")
                self.stored.add(marker)
                return StepOutcome(None, "POST", "201")
            found = marker in self.stored
            return StepOutcome(None if found else f"{marker} not found", "GET", "200")


def test_concurrent_writers_write_every_record_and_return_them_in_order() -> None:
    service = Service()
    written = write_records(spec(60, 4), "run1", 101, [service.perform] * 4)
    assert [c.i for c in written] == list(range(101, 161))
    assert [c.marker for c in written] == [f"pa-run1-{i:06d}" for i in range(101, 161)]
    assert len(service.stored) == 60
    assert 1 < service.most <= 4  # at the same time, never more than concurrency


def test_one_writer_writes_one_record_at_a_time() -> None:
    service = Service()
    write_records(spec(10), "run1", 1, [service.perform])
    assert service.most == 1
    assert service.attempted == list(range(1, 11))


def test_the_lowest_numbered_refusal_is_reported_and_no_record_starts_after_one() -> None:
    service = Service(refuse=frozenset({7, 9}), pause=0.005)
    with pytest.raises(CanaryError) as caught:
        write_records(spec(200, 4), "run1", 1, [service.perform] * 4)
    message = str(caught.value)
    assert message.startswith("writing canary pa-run1-000007 failed after ")
    assert ", 4 at a time: POST /notes answered 500 for 7" in message
    assert caught.value.response == "500"
    # The writers stop at the first refusal they see: the ones in flight finish, no more.
    assert len(service.attempted) < 20


def test_a_sequential_refusal_keeps_its_message() -> None:
    service = Service(refuse=frozenset({3}))
    with pytest.raises(CanaryError, match=r"pa-run1-000003 failed after 2 of 5 were written: "):
        write_records(spec(5), "run1", 1, [service.perform])


def test_concurrent_readers_find_what_one_reader_finds() -> None:
    service = Service()
    canaries = [Canary(i, f"pa-run1-{i:06d}") for i in range(1, 41)]
    for canary in canaries[::3]:
        service.stored.add(canary.marker)
    one = read_records(spec(40), "run1", canaries, [service.perform])
    many = read_records(spec(40, 5), "run1", canaries, [service.perform] * 5)
    assert many == one
    assert [c.i for c in many.missing] == [c.i for c in canaries if (c.i - 1) % 3]
    assert many.first_failure == "pa-run1-000002 not found"
    assert service.most > 1


def test_a_failure_inside_a_writer_is_raised_in_the_caller() -> None:
    def broken(step: CanaryStep, variables: dict[str, str]) -> StepOutcome:
        raise RuntimeError("a bug in a step")

    with pytest.raises(RuntimeError, match="a bug in a step"):
        write_records(spec(10, 3), "run1", 1, [broken] * 3)


@pytest.mark.parametrize("value", [0, -1, 33, "many"])
def test_concurrency_outside_1_to_32_is_refused(value: object) -> None:
    with pytest.raises(ValidationError, match="concurrency"):
        CanarySpec.model_validate({"concurrency": value, **STEPS})


def test_records_are_written_one_after_another_unless_the_config_says_otherwise() -> None:
    assert CanarySpec.model_validate(STEPS).concurrency == 1

"""cleanup removes a run's containers at the same time, but not over ssh:// (no Docker: a
stub API that records what it was asked, and when)."""

from __future__ import annotations

import threading
from typing import Any

from persistaudit.cleanup import Resource, remove_resources


class Api:
    """Removes whatever it is asked to; a container's removal waits for `together` others
    to be under way at once (a barrier: removals made one after another break it)."""

    def __init__(self, base_url: str, together: int) -> None:
        self.base_url = base_url
        self.barrier = threading.Barrier(together, timeout=5) if together > 1 else None
        self.calls: list[str] = []
        self.lock = threading.Lock()

    def remove_container(self, container: str, **_: Any) -> None:
        if self.barrier is not None:
            self.barrier.wait()
        with self.lock:
            self.calls.append(container)

    def remove_volume(self, name: str, **_: Any) -> None:
        with self.lock:
            self.calls.append(name)


class Client:
    def __init__(self, api: Api) -> None:
        self.api = api


def resources() -> list[Resource]:
    volume = [Resource("volume", "persistaudit-x-r1", "persistaudit-x-r1", {})]
    return volume + [Resource("container", f"c{i}", f"c{i}", {}) for i in range(3)]


def test_a_runs_containers_are_removed_at_the_same_time_then_its_volume() -> None:
    api = Api("http+docker://localhost", together=3)
    removal = remove_resources(Client(api), resources())  # type: ignore[arg-type]
    assert sorted(api.calls[:3]) == ["c0", "c1", "c2"]
    assert api.calls[3] == "persistaudit-x-r1"  # after every container that held it
    assert sorted(removal.removed) == sorted(str(r) for r in resources())
    assert removal.left == {}


def test_over_ssh_containers_are_removed_one_after_another() -> None:
    api = Api("http+docker://ssh", together=1)
    active = 0
    most = 0
    count = threading.Lock()
    removed = api.remove_container

    def one(container: str, **kwargs: Any) -> None:
        nonlocal active, most
        with count:
            active += 1
            most = max(most, active)
        threading.Event().wait(0.02)
        removed(container, **kwargs)
        with count:
            active -= 1

    api.remove_container = one  # type: ignore[method-assign]
    removal = remove_resources(Client(api), resources())  # type: ignore[arg-type]
    assert api.calls == ["c0", "c1", "c2", "persistaudit-x-r1"]
    assert most == 1
    assert removal.left == {}

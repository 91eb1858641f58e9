"""DockerContainer.paused(): the engine asked to pause at once; a refusal of the kernel's
freezer is asked again, a container that is not running is copied as it is."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, cast

import docker.errors
import pytest

from persistaudit.runtime import base
from persistaudit.runtime.base import DockerContainer

FREEZE = "Cannot pause container c1: OCI runtime pause failed: unable to freeze: unknown"


@dataclass
class Response:
    status_code: int
    reason: str = "Internal Server Error"
    url: str = "http+docker://localhost/v1.41/containers/c1/pause"


def refusal(status: int, explanation: str) -> docker.errors.APIError:
    return docker.errors.APIError(
        f"{status} Server Error", response=cast(Any, Response(status)), explanation=explanation
    )


@dataclass
class SdkContainer:
    """The SDK container's pause and unpause, answering with the given refusals first."""

    refusals: list[docker.errors.APIError] = field(default_factory=list)
    calls: list[str] = field(default_factory=list)
    late_unpause: int = 0  # inspections still saying "paused" after the unpause call
    status: str = "running"

    def pause(self) -> None:
        self.calls.append("pause")
        if self.refusals:
            raise self.refusals.pop(0)
        self.status = "paused"

    def unpause(self) -> None:
        self.calls.append("unpause")
        if not self.late_unpause:
            self.status = "running"

    def reload(self) -> None:
        if self.status == "paused" and "unpause" in self.calls:
            if self.late_unpause:
                self.late_unpause -= 1
            else:
                self.status = "running"

    @property
    def attrs(self) -> dict[str, Any]:
        return {"State": {"Status": self.status}}


@pytest.fixture(autouse=True)
def quick(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(base, "FREEZE_RETRY_S", (0.0, 0.0, 0.0))


def test_a_running_container_is_paused_and_unpaused_without_a_look_at_its_state() -> None:
    sdk = SdkContainer()
    with DockerContainer(cast(Any, sdk)).paused():
        assert sdk.calls == ["pause"]
    assert sdk.calls == ["pause", "unpause"]


def test_a_refusal_of_the_freezer_is_asked_again() -> None:
    sdk = SdkContainer([refusal(500, FREEZE), refusal(500, FREEZE)])
    with DockerContainer(cast(Any, sdk)).paused():
        pass
    assert sdk.calls == ["pause", "pause", "pause", "unpause"]


def test_a_freezer_that_keeps_refusing_fails_the_snapshot_and_nothing_is_unpaused() -> None:
    sdk = SdkContainer([refusal(500, FREEZE) for _ in range(4)])
    container = DockerContainer(cast(Any, sdk))
    with pytest.raises(docker.errors.APIError, match="unable to freeze"), container.paused():
        raise AssertionError("copied without a pause")
    assert sdk.calls == ["pause"] * 4


def test_a_container_that_is_not_running_is_copied_as_it_is() -> None:
    sdk = SdkContainer([refusal(409, "Container c1 is not running")])
    with DockerContainer(cast(Any, sdk)).paused():
        pass
    assert sdk.calls == ["pause"]  # not unpaused: it was not paused by the snapshot


def test_any_other_refusal_is_raised_at_once() -> None:
    sdk = SdkContainer([refusal(500, "something else broke")])
    container = DockerContainer(cast(Any, sdk))
    with pytest.raises(docker.errors.APIError, match="something else broke"), container.paused():
        pass
    assert sdk.calls == ["pause"]


def test_paused_returns_once_the_engine_reports_the_unpause() -> None:
    """The engine records an unpause from containerd's event, a moment after the call: a
    snapshot right after must not find the container "paused" and skip its own pause."""
    sdk = SdkContainer(late_unpause=3)
    container = DockerContainer(cast(Any, sdk))
    with container.paused():
        pass
    assert container.state().status == "running"
    assert sdk.late_unpause == 0

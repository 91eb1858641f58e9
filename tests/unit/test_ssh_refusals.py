"""An ssh:// engine whose host refuses another channel (OpenSSH's MaxSessions) raises
paramiko's own ChannelException, not an SDK error: clean-up names what it left behind and
the removal check finds no evidence of a removal, never an internal error of persistaudit."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from persistaudit import cleanup
from persistaudit.runtime.base import DockerContainer, EngineRuntime

paramiko = pytest.importorskip("paramiko")


def refused(*_: Any, **__: Any) -> Any:
    raise paramiko.ChannelException(2, "Connect failed")


class Api:
    """Lists one container and one volume of the run; removing them is refused."""

    base_url = "http+docker://ssh"  # the SDK's, for an ssh:// engine
    remove_container = remove_volume = remove_network = inspect_container = staticmethod(refused)

    def containers(self, **_: Any) -> list[dict[str, Any]]:
        return [{"Id": "c1", "Names": ["/persistaudit-x-r1-1"], "Labels": {}}]

    def volumes(self, **_: Any) -> dict[str, Any]:
        return {"Volumes": [{"Name": "persistaudit-x-r1", "Labels": {}}]}

    def networks(self, **_: Any) -> list[dict[str, Any]]:
        return []


class Client:
    api = Api()


def test_a_refused_channel_leaves_the_resources_behind_and_says_so() -> None:
    removal = cleanup.remove_run("r1", "persistaudit-x-r1", client=Client(), deadline_s=0.3)  # type: ignore[arg-type]
    assert removal.removed == []
    assert removal.left == {
        "container persistaudit-x-r1-1": "ChannelException(2, 'Connect failed')",
        "volume persistaudit-x-r1": "ChannelException(2, 'Connect failed')",
    }
    assert "persistaudit clean" in removal.warning()


def test_a_refused_channel_is_no_evidence_that_the_container_was_removed() -> None:
    class Container:
        id, name = "c1", "persistaudit-x-r1-1"

    runtime = SimpleNamespace(client=Client(), _container=DockerContainer(Container()))  # type: ignore[arg-type]
    assert EngineRuntime._container_gone(runtime) == []  # type: ignore[arg-type]

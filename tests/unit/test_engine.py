"""Which engine is local: its published ports can then stay on loopback."""

from __future__ import annotations

import pytest

from persistaudit import engine


@pytest.mark.parametrize(
    ("docker_host", "local"),
    [
        ("", True),
        ("unix:///var/run/docker.sock", True),
        ("npipe:////./pipe/docker_engine", True),
        ("tcp://127.0.0.1:2375", True),
        ("tcp://127.1.2.3:2376", True),
        ("tcp://localhost:2375", True),
        ("tcp://LOCALHOST:2375", True),
        ("tcp://[::1]:2375", True),
        ("tcp://10.0.0.5:2375", False),
        ("tcp://docker:2375", False),
        ("tcp://0.0.0.0:2375", False),
        ("tcp://[2001:db8::1]:2375", False),
        ("ssh://me@localhost", False),
    ],
)
def test_local_means_on_this_machine_including_tcp_to_loopback(
    monkeypatch: pytest.MonkeyPatch, docker_host: str, local: bool
) -> None:
    monkeypatch.setenv("DOCKER_HOST", docker_host)
    assert engine.is_local() is local

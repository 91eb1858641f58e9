"""Which engine is local, and whose resources `clean` may remove."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

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


def owner(pid: int, started: str | None = None, host: str | None = None) -> dict[str, str]:
    return {
        engine.LABEL_OWNER_HOST: host or socket.gethostname(),
        engine.LABEL_OWNER_PID: str(pid),
        engine.LABEL_OWNER_STARTED: engine.process_started(pid) if started is None else started,
    }


def test_a_live_owner_keeps_its_resources() -> None:
    assert engine.owner_alive(owner(os.getpid())) == f"its run (pid {os.getpid()}) is still running"


def test_an_ended_owner_does_not() -> None:
    proc = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        text=True,
        capture_output=True,
        check=True,
    )
    assert engine.owner_alive(owner(int(proc.stdout), started="123")) == ""


def test_a_pid_reused_by_a_later_process_is_not_the_owner() -> None:
    assert engine.owner_alive(owner(os.getpid(), started="1")) == ""


def test_other_hosts_and_unknown_owners_are_left_alone() -> None:
    assert engine.owner_alive(owner(1, host="ci-runner-7")) == "owned by a run on host ci-runner-7"
    assert engine.owner_alive({}) == "no owner recorded (made by an older persistaudit)"

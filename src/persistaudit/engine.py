"""The Docker engine connection, and the labels on everything persistaudit creates."""

from __future__ import annotations

import contextlib
import ipaddress
import os
import secrets
import socket
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import docker
import docker.errors
from docker import DockerClient

from persistaudit.exceptions import EngineUnavailable

LABEL_MANAGED = "io.persistaudit.managed"
LABEL_RUN = "io.persistaudit.run"
LABEL_TARGET = "io.persistaudit.target"
# Who created a resource: `clean` leaves alone what a live run on this host still uses, and
# tests (or a CI job) can find exactly what one process left behind.
LABEL_OWNER_HOST = "io.persistaudit.owner.host"
LABEL_OWNER_PID = "io.persistaudit.owner.pid"
LABEL_OWNER_STARTED = "io.persistaudit.owner.started"

REAPER_ENV = "TESTCONTAINERS_RYUK_DISABLED"


@contextlib.contextmanager
def without_reaper() -> Iterator[None]:
    """testcontainers' reaper stays off while persistaudit starts a container of its own.

    persistaudit removes what it creates itself (labels + finally blocks), and the reaper
    image usually cannot be pulled offline. Only for the block: a team's own testcontainers in
    the same process keep their setting. Setting TESTCONTAINERS_RYUK_DISABLED decides for both.
    """
    from testcontainers.core.config import testcontainers_config as tc

    if REAPER_ENV in os.environ:
        yield
        return
    previous = tc.ryuk_disabled
    tc.ryuk_disabled = True
    try:
        yield
    finally:
        tc.ryuk_disabled = previous


def new_run_id() -> str:
    return secrets.token_hex(4)


def process_started(pid: int) -> str:
    """When a process started, as the kernel counts it (clock ticks since boot); "" if unknown.

    With the pid, it tells a live owner from a later process that reused its pid.
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    # The command name (field 2) may hold spaces and parentheses: split after the last ")".
    fields = stat.rsplit(")", 1)[-1].split()
    return fields[19] if len(fields) > 19 else ""


def owner_labels() -> dict[str, str]:
    pid = os.getpid()
    return {
        LABEL_OWNER_HOST: socket.gethostname(),
        LABEL_OWNER_PID: str(pid),
        LABEL_OWNER_STARTED: process_started(pid),
    }


def run_prefix(target: str, run_id: str) -> str:
    """The start of every name a run gives (volume NAME, containers NAME-1, NAME-2, ...).

    The random run id makes it the run's own: clean-up also finds by it what carries no label,
    such as a volume the engine re-created unlabelled for a container created meanwhile.
    """
    return f"persistaudit-{target}-{run_id}"


def owner_alive(labels: dict[str, str]) -> str:
    """Why a resource's owner may still use it ("" when its owner is gone).

    An owner is alive when it runs on another host (it cannot be seen from here), or when
    its pid is alive here with the same start time (not a later process that reused the pid).
    """
    host = labels.get(LABEL_OWNER_HOST)
    if host is None:
        return "no owner recorded (made by an older persistaudit)"
    if host != socket.gethostname():
        return f"owned by a run on host {host}"
    try:
        pid = int(labels.get(LABEL_OWNER_PID, ""))
    except ValueError:
        return f"unreadable owner pid {labels.get(LABEL_OWNER_PID)!r}"
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return ""
    except PermissionError:
        pass  # alive, another user's
    started, now = labels.get(LABEL_OWNER_STARTED, ""), process_started(pid)
    if started and now and started != now:
        return ""  # the pid was reused by a later process
    return f"its run (pid {pid}) is still running"


def labels(run_id: str, target: str) -> dict[str, str]:
    return {LABEL_MANAGED: "true", LABEL_RUN: run_id, LABEL_TARGET: target, **owner_labels()}


def is_local() -> bool:
    """True when the engine runs on this machine, so its published ports can stay on loopback.

    That is a local socket, or tcp to a loopback address (tcp://127.0.0.1, tcp://localhost,
    tcp://[::1]). Any other host, and ssh://, is remote.
    """
    host = os.environ.get("DOCKER_HOST", "")
    if not host or host.startswith(("unix://", "npipe://")):
        return True
    url = urllib.parse.urlsplit(host)
    if url.scheme not in ("tcp", "http", "https"):
        return False
    try:
        address = url.hostname or ""
    except ValueError:
        return False
    if address.rstrip(".") == "localhost":  # hostname is lower-cased
        return True
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def connect() -> DockerClient:
    """A client for the engine in DOCKER_HOST (or the default socket) that is known to answer."""
    try:
        client = docker.from_env(timeout=120)
        client.ping()
    except docker.errors.DockerException as exc:
        where = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
        reason = str(exc).split("(")[0].strip() or type(exc).__name__
        raise EngineUnavailable(
            f"Docker engine at {where} does not answer ({reason}). "
            "Hint: run `make setup` (installs and starts one as root on Debian) or start dockerd."
        ) from None
    return client


@dataclass(frozen=True)
class Engine:
    """Facts about the engine, recorded in results for the report's header."""

    version: str
    api_version: str
    os: str

    @classmethod
    def describe(cls, client: DockerClient) -> Engine:
        info = client.version()
        return cls(
            version=str(info.get("Version", "?")),
            api_version=str(info.get("ApiVersion", "?")),
            os=f"{info.get('Os', '?')}/{info.get('Arch', '?')}",
        )

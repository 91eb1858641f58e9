"""The Docker engine connection, and the labels on everything persistaudit creates."""

from __future__ import annotations

import contextlib
import importlib.util
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
import docker.tls
from docker import DockerClient

from persistaudit import docker_context
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
    tcp://[::1]). Any other host, and ssh://, is remote. The engine is the one connect()
    talks to: DOCKER_HOST, or the current Docker context's.
    """
    try:
        host = docker_context.resolve().host
    except EngineUnavailable:
        return False  # connect() has already said why; nothing is published through it
    return host_is_local(host)


def host_is_local(host: str) -> bool:
    """Whether an engine address (unix://, tcp://, ssh://...) is on this machine."""
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


ENGINE_HINT = (
    "Hint: start the engine (Debian/Ubuntu: apt-get install docker.io, then start dockerd), "
    "or choose a running one with DOCKER_HOST or `docker context use NAME`"
)
SSH_HINT = "an ssh:// engine needs paramiko: pip install 'persistaudit[ssh]'"


def sdk_environment(endpoint: docker_context.Endpoint | None = None) -> dict[str, str] | None:
    """The environment a docker SDK client of someone else's (testcontainers') needs to reach
    the same engine: None for DOCKER_HOST or the local socket (the SDK reads those itself),
    DOCKER_HOST and the TLS variables for a context's engine."""
    endpoint = endpoint or docker_context.resolve()
    if not endpoint.from_context:
        return None
    env = {"DOCKER_HOST": endpoint.host}
    if endpoint.tls_dir is not None:
        env["DOCKER_CERT_PATH"] = str(endpoint.tls_dir)  # ca.pem, cert.pem, key.pem
        if not endpoint.skip_tls_verify:
            env["DOCKER_TLS_VERIFY"] = "1"
    return env


def published_host() -> str:
    """Where a remote engine's published ports are: its address's host name (loopback for
    a local engine, or one whose address has no host name)."""
    try:
        host = docker_context.resolve().host
    except EngineUnavailable:
        return "127.0.0.1"
    if host_is_local(host):
        return "127.0.0.1"
    try:
        return urllib.parse.urlsplit(host).hostname or "127.0.0.1"
    except ValueError:
        return "127.0.0.1"


def client_for(endpoint: docker_context.Endpoint, timeout: int = 120) -> DockerClient:
    """A client for the endpoint (not yet known to answer).

    ssh:// goes through paramiko (the `ssh` extra: the SDK imports it for any ssh:// URL),
    which reads ~/.ssh/config and known_hosts. DOCKER_HOST keeps the SDK's own reading of
    the environment (DOCKER_TLS_VERIFY, DOCKER_CERT_PATH); a context brings its TLS files.
    """
    if endpoint.host.startswith("ssh://") and importlib.util.find_spec("paramiko") is None:
        raise EngineUnavailable(f"cannot reach the engine at {endpoint}: {SSH_HINT}")
    if not endpoint.from_context:
        return docker.from_env(timeout=timeout)
    tls: docker.tls.TLSConfig | bool = False
    if endpoint.tls_dir is not None:
        files = {name: endpoint.tls_dir / name for name in docker_context.TLS_FILES}
        tls = docker.tls.TLSConfig(
            client_cert=(str(files["cert.pem"]), str(files["key.pem"]))
            if files["cert.pem"].is_file() and files["key.pem"].is_file()
            else None,
            ca_cert=str(files["ca.pem"]) if files["ca.pem"].is_file() else None,
            verify=not endpoint.skip_tls_verify,
        )
    return DockerClient(base_url=endpoint.host, tls=tls, timeout=timeout)


def connect(timeout: int = 120) -> DockerClient:
    """A client for the engine the docker CLI would use (DOCKER_HOST, else the current
    context), known to answer."""
    endpoint = docker_context.resolve()
    try:
        client = client_for(endpoint, timeout)
        client.ping()
    except _connection_errors() as exc:
        raise EngineUnavailable(
            f"no Docker engine answers at {endpoint}: {why_unreachable(exc)}. {ENGINE_HINT}"
        ) from None
    return client


def transport_errors() -> tuple[type[Exception], ...]:
    """What the ssh transport raises of its own (paramiko's errors, not the SDK's): a check
    they stop is BLOCKED by the engine connection, not an internal error."""
    try:
        import paramiko
    except ImportError:
        return ()
    return (paramiko.SSHException,)


# What an engine call raises when the engine refused or could not be reached (the SDK's
# errors, and over ssh:// paramiko's own, such as a channel the host's MaxSessions refuses).
ENGINE_CALL_ERRORS: tuple[type[Exception], ...] = (
    docker.errors.DockerException,
    *transport_errors(),
)


def _connection_errors() -> tuple[type[Exception], ...]:
    """What a failed connection raises: an engine call's errors, and the socket's own."""
    return (*ENGINE_CALL_ERRORS, OSError)


# What the SDK's long message (a urllib3 error inside a requests error) comes down to.
_CAUSES = (
    ("No such file or directory", "no socket there"),
    ("Connection refused", "connection refused"),
    ("Permission denied", "permission denied (is this user in the docker group?)"),
    ("timed out", "timed out"),
    ("Name or service not known", "unknown host name"),
    ("Unable to connect to port", "no ssh server answers"),
    ("not found in known_hosts", "its ssh host key is unknown (ssh to it once to accept it)"),
    ("Authentication failed", "ssh authentication failed"),
)


def why_unreachable(exc: Exception) -> str:
    """The cause of a failed connection in a few words."""
    text = str(exc)
    for needle, cause in _CAUSES:
        if needle in text:
            return cause
    return text.split("(")[0].strip().rstrip(":") or type(exc).__name__


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

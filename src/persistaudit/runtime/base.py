"""The driver interface: a Runtime hands the checks a ContainerHandle and a typed TargetInfo.

Stages and checks use only what ContainerHandle and Runtime declare, so a target from an image,
a compose file or a test's fake (tests/unit/fakes.py) is audited by the same code.
"""

from __future__ import annotations

import abc
import contextlib
import math
import os
import posixpath
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import docker.errors
import requests
from docker import DockerClient
from docker.models.containers import Container

if TYPE_CHECKING:
    from collections.abc import Mapping

    from persistaudit.runtime.restore import FileOwner, Restored
    from persistaudit.runtime.upgrade import Rehearsal

from persistaudit import activity, engine, host_copy, reproduce, upper_dir
from persistaudit.cleanup import Removal
from persistaudit.config import TargetConfig
from persistaudit.exceptions import RestoreUnsupported, TargetRemoved, UpgradeUnsupported
from persistaudit.readiness import LOG_TAIL, ContainerState, Probeable, WaitStrategy, wait_ready
from persistaudit.runtime.attached_exec import exec_attached


@dataclass(frozen=True)
class Mount:
    """One mount of a container, as the engine reports it."""

    type: str  # volume, bind, tmpfs
    source: str
    destination: str
    name: str  # volume name; "" for binds
    rw: bool
    anonymous: bool


@dataclass(frozen=True)
class DeclaredMount:
    """One mount of the audited service as its compose file declares it (the author's intent).

    network_fs says why the storage behind it is a network filesystem ("" when it is not):
    SQLite's WAL needs shared memory between processes, which NFS and CIFS do not provide.
    """

    type: str  # volume (named), anonymous, bind, tmpfs, npipe, cluster
    source: str  # the volume's key or the bind's host path as declared; "" for anonymous, tmpfs
    target: str
    read_only: bool
    network_fs: str = ""
    redirected_to: str = ""  # a bind's source was replaced by this run's own folder


@dataclass(frozen=True)
class TargetInfo:
    """What the report's header says about the target; results.json's "target" section."""

    name: str
    driver: str  # a key of runtime.DRIVERS
    image: str  # the reference the config names
    image_id: str  # the id every container of this run ran ("" before the start)
    repo_digests: list[str]
    volume: str
    mount: str
    databases: list[str]  # the paths of the config's databases, in its order
    restart_policy: str
    compose_file: str = ""  # compose: the user's compose file
    project: str = ""  # compose: this run's project name
    service: str = ""  # compose: the service that owns the database


# What each step amounts to, as evidence shows it ({name}: the container). A driver that does
# something else (compose) says so in its own step_command.
IMAGE_STEP_COMMANDS = {
    "restart": "docker restart {name}",
    "recreate": "docker stop {name} && docker rm {name}  # volume kept\n"
    "docker run -d ... (same image, same volume)",
}


@runtime_checkable
class ContainerHandle(Probeable, Protocol):
    """The container that owns the database, as the audit uses it; every driver provides one.

    Probeable (what a wait strategy polls: name, state, logs, exec, url) plus what snapshots
    and the volume check need.
    """

    @property
    def id(self) -> str: ...

    def exec(
        self, command: list[str], timeout: float | None = None, stdin: bytes | None = None
    ) -> tuple[int, str]:
        """Run command in the container: exit code and output (124 past the timeout).

        stdin, when given, is sent on standard input, which is then closed.
        """
        ...

    def mounts(self) -> list[Mount]: ...

    def paused(self) -> contextlib.AbstractContextManager[None]:
        """Frozen while inside: files copied meanwhile are mutually consistent."""
        ...

    def get_archive(self, path: str) -> Iterator[bytes] | None:
        """A tar stream of one path, or None when it does not exist."""
        ...

    def changed_files(self) -> list[str]:
        """Paths added or changed in the container's own layer (docker diff), sorted."""
        ...


def _engine_time(stamp: str) -> datetime | None:
    """Parse the engine's RFC 3339 times (nanoseconds, Z) to microseconds."""
    match = re.match(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?Z$", stamp)
    if not match:
        return None
    fraction = (match.group(2) or "0")[:6].ljust(6, "0")
    return datetime.fromisoformat(f"{match.group(1)}.{fraction}+00:00")


UNPAUSE_SETTLE_S = 2.0  # the longest wait for the engine to record an unpause
EXEC_TIMEOUT = 300.0  # seconds a command run in the target may take when its caller set none
CONFLICT = 409  # the engine's answer to pausing a container that is not running
FREEZE_RETRY_S = (0.1, 0.3, 1.0)  # waits before asking again for a pause the freezer refused
HEALTH_OUTPUT = 300  # characters of one healthcheck's output kept as evidence (its end)


def _health_log(health: dict[str, Any]) -> tuple[str, ...]:
    """The engine's last healthcheck results (it keeps five), one line each: code and output."""
    out = []
    for entry in health.get("Log") or []:
        output = " ".join(str(entry.get("Output", "")).split())
        if len(output) > HEALTH_OUTPUT:  # the end says why: a traceback's last line
            output = "..." + output[-HEALTH_OUTPUT:]
        out.append(f"{entry.get('Start', '')}: exit {entry.get('ExitCode')}: {output}")
    return tuple(out)


class DockerContainer:
    """A live container: state, logs, exec, published ports and file copies.

    Wraps the Docker SDK's Container; host_ip comes from testcontainers, which knows how to
    reach a published port from inside docker-in-docker set-ups too.
    """

    def __init__(self, container: Container, host_ip: str = "127.0.0.1") -> None:
        self._container = container
        self.host_ip = host_ip
        # Whether files on its mounts may be read from the host (host_copy), and the
        # container's attributes that says so: a container's mounts never change.
        self._host_readable: tuple[str, dict[str, Any]] | None = None
        self.layer_listed_by = ""  # how changed_files() listed the layer last (upper_dir)

    @property
    def name(self) -> str:
        return str(self._container.name)

    @property
    def id(self) -> str:
        return str(self._container.id)

    @property
    def attrs(self) -> dict[str, Any]:
        self._container.reload()
        return dict(self._container.attrs)

    def state(self) -> ContainerState:
        attrs = self.attrs
        state = attrs.get("State", {})
        return ContainerState(
            status=str(state.get("Status", "unknown")),
            exit_code=int(state.get("ExitCode", 0)),
            restart_count=int(attrs.get("RestartCount", 0)),
            error=str(state.get("Error", "")),
            health=str((state.get("Health") or {}).get("Status", "")),
            health_log=_health_log(state.get("Health") or {}),
            started_at=str(state.get("StartedAt", "")),
        )

    def logs(self, tail: int = LOG_TAIL, current_run: bool = False) -> list[str]:
        """The last log lines; with current_run, only those since the container last started.

        Both the line stamps and State.StartedAt come from the engine's clock, so a restart
        cuts cleanly however fast it is.
        """
        try:
            raw = self._container.logs(tail=tail, stdout=True, stderr=True, timestamps=True)
            state = self.attrs.get("State", {}) if current_run else {}
        except docker.errors.APIError:
            return []
        started = _engine_time(str(state.get("StartedAt", ""))) if current_run else None
        data = raw if isinstance(raw, bytes) else b"".join(raw)
        lines = []
        for line in data.decode("utf-8", "replace").splitlines():
            stamp, _, text = line.partition(" ")
            when = _engine_time(stamp)
            if started is not None and when is not None and when < started:
                continue
            lines.append(text)
        return lines

    def exec(
        self, command: list[str], timeout: float | None = None, stdin: bytes | None = None
    ) -> tuple[int, str]:
        """Run command in the container: exit code and output.

        The command always runs attached (runtime.attached_exec): stdin is sent and closed,
        output is bounded, and past the timeout (EXEC_TIMEOUT when none is given: the target
        is untrusted, so no command may hold an audit for ever) the answer is 124 with what
        it said so far (the command itself is left to end with the container).
        """
        client = self._container.client
        assert client is not None  # a container from the SDK always has its client
        deadline = EXEC_TIMEOUT if timeout is None else timeout
        return exec_attached(client.api, self.id, command, deadline, stdin)

    def url(self, port: int, path: str) -> str:
        ports = self.attrs.get("NetworkSettings", {}).get("Ports") or {}
        bindings = ports.get(f"{port}/tcp") or []
        if not bindings:
            raise LookupError(f"port {port} of {self.name} is not published")
        host_port = bindings[0]["HostPort"]
        return f"http://{self.host_ip}:{host_port}{path}"

    def mounts(self) -> list[Mount]:
        attrs = self.attrs
        requested = {m.get("Target") for m in attrs.get("HostConfig", {}).get("Mounts") or []}
        requested |= {b.split(":")[1] for b in attrs.get("HostConfig", {}).get("Binds") or []}
        out = []
        for m in attrs.get("Mounts", []):
            name = str(m.get("Name", ""))
            anonymous = m.get("Type") == "volume" and m.get("Destination") not in requested
            out.append(
                Mount(
                    type=str(m.get("Type", "")),
                    source=str(m.get("Source", "")),
                    destination=str(m.get("Destination", "")),
                    name=name,
                    rw=bool(m.get("RW", False)),
                    anonymous=anonymous,
                )
            )
        return out

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """Freeze the container so that files copied meanwhile are mutually consistent.

        One that is not running (stopped, restarting, paused by someone else: the engine
        answers 409) is copied as it is, and left as it was. Asked at once, without a look
        at its state first: that look would cost one more round trip per snapshot.
        """
        frozen = self._pause()
        try:
            yield
        finally:
            if frozen:
                self._container.unpause()
                self._wait_unpaused()

    def _wait_unpaused(self) -> None:
        """Until the engine reports the unpause (it records containerd's event a moment after
        the call returns): a paused() right after would otherwise see "paused", skip pausing,
        and copy files while the service writes."""
        deadline = time.monotonic() + UNPAUSE_SETTLE_S
        while self.state().status == "paused" and time.monotonic() < deadline:
            time.sleep(0.01)

    def _pause(self) -> bool:
        """Pause the container: True when it is paused now, False when it was not running.

        The kernel's freezer gives up on a process it cannot stop at once (one blocked in a
        write to a busy disk): the engine answers "unable to freeze" and leaves the container
        running, so the pause is asked again a little later, a few times.
        """
        for wait in (*FREEZE_RETRY_S, None):
            try:
                self._container.pause()
            except docker.errors.APIError as exc:
                if exc.status_code == CONFLICT:
                    return False
                if wait is None or "unable to freeze" not in str(exc):
                    raise
                time.sleep(wait)
                continue
            return True
        raise AssertionError("unreachable: the last attempt returns or raises")

    def get_archive(self, path: str) -> Iterator[bytes] | None:
        """A tar stream of one path, or None when it does not exist.

        A regular file on a mount is read from the host when the engine is local (host_copy:
        the engine's archive call takes 50 ms, this under one); the stream is the same."""
        hosted = self._from_host(path)
        if hosted is not None:
            return hosted
        try:
            stream, _stat = self._container.get_archive(path)
        except docker.errors.NotFound:
            try:  # the engine says "not found" for a missing container too
                self._container.reload()
            except docker.errors.NotFound:
                raise TargetRemoved(
                    f"container {self.name} was removed by something else"
                ) from None
            return None
        return iter(stream)

    def changed_files(self) -> list[str]:
        """Paths added or changed in the container's own layer (docker diff), sorted.

        Deleted paths are left out: what matters is what the container wrote where a re-created
        container will not find it. Mounted folders are not part of the layer. Read from the
        layer's host folder when the engine is local (upper_dir: milliseconds, where docker
        diff takes the engine 0.4 s and holds the container meanwhile).
        """
        listed = self._listed_from_host()
        if listed is not None:
            self.layer_listed_by = upper_dir.FROM_HOST
            return listed
        try:
            changes = self._container.diff() or []
        except docker.errors.NotFound:
            raise TargetRemoved(f"container {self.name} was removed by something else") from None
        self.layer_listed_by = upper_dir.DOCKER_DIFF
        return sorted(str(c["Path"]) for c in changes if c.get("Kind") in (0, 1))

    def host_file(self, path: str) -> tuple[int, os.stat_result] | None:
        """The regular file at path opened on the host, with its stat, when host_copy may
        read it there (the caller closes it); None when the engine is to be asked."""
        if os.environ.get("PERSISTAUDIT_COPY_FROM_ENGINE"):
            return None  # asked to use the engine's archive (tests compare the two)
        attrs = self._host_attrs()
        found = host_copy.host_source(attrs, path) if attrs is not None else None
        return host_copy.open_file(*found) if found is not None else None

    def _from_host(self, path: str) -> Iterator[bytes] | None:
        opened = self.host_file(path)
        if opened is None:
            return None
        return host_copy.tar_stream(*opened, posixpath.basename(path))

    def _host_attrs(self) -> dict[str, Any] | None:
        """The container's attributes when its mounts may be read from the host, else None."""
        if self._host_readable is not None and self._host_readable[0] == self.id:
            return self._host_readable[1]
        client = self._container.client
        if client is None or str(getattr(client.api, "base_url", "")) != host_copy.LOCAL_SOCKET:
            return None
        try:
            options = client.info().get("SecurityOptions") or []
            attrs = self.attrs
        except (docker.errors.DockerException, requests.RequestException):
            return None  # the engine's own route says what went wrong
        if host_copy.maps_ids([str(o) for o in options]):
            return None
        self._host_readable = (self.id, attrs)
        return attrs

    def _listed_from_host(self) -> list[str] | None:
        if os.environ.get("PERSISTAUDIT_LAYER_FROM_ENGINE"):
            return None  # asked to use docker diff (tests compare the two)
        client = self._container.client
        try:
            attrs = self.attrs
        except docker.errors.NotFound:
            raise TargetRemoved(f"container {self.name} was removed by something else") from None
        base_url = str(getattr(client.api, "base_url", "")) if client else ""
        layer = upper_dir.upper_dir(attrs, base_url)
        return upper_dir.changed_paths(layer) if layer else None


class Runtime(abc.ABC):
    """A target under audit: one fresh volume, and the container(s) using it.

    start() is the fresh install; restart() and recreate() are the lifecycle cycles. Each
    returns the seconds until ready or raises TargetBlocked. stop() and kill() end the
    service (gracefully, or with a signal) without waiting for it to come back. close()
    removes everything.
    """

    NAME: str  # the driver's key in runtime.DRIVERS

    @property
    @abc.abstractmethod
    def container(self) -> ContainerHandle:
        """The container that owns the database (RuntimeError before the start)."""

    @abc.abstractmethod
    def start(self) -> float: ...

    @abc.abstractmethod
    def restart(self) -> float: ...

    @abc.abstractmethod
    def recreate(self) -> float: ...

    @abc.abstractmethod
    def stop(self, timeout: float) -> None:
        """Ask the service to stop (SIGTERM), and kill it after timeout seconds."""

    @abc.abstractmethod
    def kill(self, signal: str = "SIGKILL") -> None:
        """Send the service a signal at once: a crash, as far as its database can tell."""

    @abc.abstractmethod
    def describe(self) -> TargetInfo:
        """What the report's header says about the target (image, digest, volume)."""

    @abc.abstractmethod
    def missing(self) -> list[str]:
        """What this run created and still uses, but something else removed ("container X").

        Asked when a step failed, and before a cycle is judged: a target that vanished is no
        data loss, it is a cycle that could not be exercised.
        """

    @abc.abstractmethod
    def close(self) -> Removal:
        """Remove every container, volume and network this runtime created."""

    def restore(
        self,
        files: dict[str, Path],
        scratch: Path,
        owners: Mapping[str, FileOwner] | None = None,
    ) -> Restored:
        """Start the same service on a fresh, labelled volume holding files (its path in the
        container -> a host file, e.g. a backup at the database's path) and wait until it is
        ready; TargetBlocked when it is not. The caller closes what it returns. owners: the
        owner, group and mode a path gets (the live file's), root's 0644 where none is given.

        By default the driver cannot: RestoreUnsupported, which a check reports as BLOCKED.
        """
        raise RestoreUnsupported(
            f"the {self.NAME} driver cannot restore a backup into a fresh volume yet, so the "
            "restore could not be rehearsed. Hint: audit the service's image with the image "
            "driver (image: or build:) to rehearse its restore"
        )

    def upgrade(self) -> Rehearsal:
        """An upgrade rehearsal on a fresh, labelled volume: the previous version
        (upgrade_from) first, then the audited one (runtime.upgrade.Rehearsal). Nothing is
        started yet; the caller closes what it returns.

        By default the driver cannot: UpgradeUnsupported, which a check reports as BLOCKED.
        """
        raise UpgradeUnsupported(
            f"the {self.NAME} driver cannot start the previous version on its own volume yet, "
            "so the upgrade could not be rehearsed. Hint: audit the service's image with the "
            "image driver (image: or build:) to rehearse its upgrade"
        )

    def step_command(self, step: str) -> str:
        """A step (start, restart, recreate) as the shell commands it amounts to, for evidence.

        {name} in it stands for the container's name. By default, an image driver's docker
        commands.
        """
        if step != "start":
            return IMAGE_STEP_COMMANDS[step]
        d = self.describe()
        return (
            f"docker volume create {d.volume}\n"
            f"docker run -d --restart {d.restart_policy} -v {d.volume}:{d.mount} "
            f"{d.image_id or d.image}  # {d.image}"
        )

    def container_settings(self) -> dict[str, Any]:
        """The exact settings of the container the run last used (reproduce.container_settings),
        for another auditor to reproduce the audit; {} when there is none to ask about."""
        return {}

    def declared_mounts(self) -> list[DeclaredMount]:
        """The service's mounts as its definition declares them, when the driver has one
        (a compose model); [] when persistaudit itself chose the only mount (image driver)."""
        return []

    def __enter__(self) -> Runtime:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


STOP_TIMEOUT = 10  # seconds a graceful stop (restart, re-create, down) may take


class EngineRuntime(Runtime):
    """What the drivers whose containers run on a Docker engine share: waiting until the
    service is ready, and stopping or killing its container."""

    config: TargetConfig
    client: DockerClient
    log: Callable[[str], None]
    strategy: WaitStrategy
    _container: DockerContainer | None

    def _container_gone(self) -> list[str]:
        """["container NAME"] when something else removed (or is removing) the run's
        container; [] when it is there, or when the engine cannot tell."""
        if self._container is None:
            return []
        try:
            state = self.client.api.inspect_container(self._container.id).get("State", {})
        except docker.errors.NotFound:
            return [f"container {self._container.name}"]
        except engine.ENGINE_CALL_ERRORS:
            return []  # the engine cannot tell: no evidence of a removal
        if state.get("Status") in ("removing", "dead"):
            return [f"container {self._container.name}"]
        return []

    def _wait(self, restarts_before: int) -> float:
        spec = self.config.readiness
        return wait_ready(
            self.container,
            self.strategy,
            timeout=spec.timeout,
            interval=spec.interval,
            restarts_before=restarts_before,
        )

    def container_settings(self) -> dict[str, Any]:
        if self._container is None:
            return {}
        try:
            attrs = self._container.attrs
            image = self.client.images.get(attrs["Image"]).attrs
        except (docker.errors.DockerException, KeyError):
            return {}  # removed meanwhile: the report says the settings were not recorded
        return reproduce.container_settings(
            attrs, (image.get("Config") or {}).get("Env"), run_env=self.config.env
        )

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        self.log(f"docker stop --time {timeout:g} {self.container.name}")
        # The engine takes whole seconds; rounding up never cuts a graceful stop short.
        with activity.during("waiting", f"stop: {self.container.name}"):
            self.client.api.stop(self.container.id, timeout=math.ceil(timeout))

    def kill(self, signal: str = "SIGKILL") -> None:
        self.log(f"docker kill --signal {signal} {self.container.name}")
        self.client.api.kill(self.container.id, signal=signal)

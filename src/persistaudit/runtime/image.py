"""The image driver: one container from an image (or build) on a fresh named volume."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping
from pathlib import Path

import docker.errors
from docker import DockerClient
from testcontainers.core.container import DockerContainer as TcContainer

from persistaudit import activity, cleanup, engine, signals
from persistaudit.config import HealthcheckSpec, HttpStep, TargetConfig
from persistaudit.exceptions import TargetBlocked, TargetRemoved
from persistaudit.images import ensure_image
from persistaudit.readiness import strategy_for
from persistaudit.runtime.base import STOP_TIMEOUT, DockerContainer, EngineRuntime, TargetInfo
from persistaudit.runtime.restore import FileOwner, Restored, restore_image
from persistaudit.runtime.upgrade import Upgrade


def engine_healthcheck(spec: HealthcheckSpec) -> dict[str, object]:
    """The config's healthcheck as the engine's API takes it (durations in nanoseconds)."""
    return {
        "test": list(spec.test),
        "interval": round(spec.interval * 1e9),
        "timeout": round(spec.timeout * 1e9),
        "retries": spec.retries,
        "start_period": round(spec.start_period * 1e9),
    }


def published_ports(config: TargetConfig) -> list[int]:
    """Container ports the audit talks to: readiness and canary steps."""
    steps = (*config.canary.write, *config.canary.read)
    ports = {step.port for step in steps if isinstance(step, HttpStep)}
    if config.readiness.http is not None:
        ports.add(config.readiness.http.port)
    return sorted(ports)


class ImageRuntime(EngineRuntime):
    """One container from the config's image (or build) on a fresh named volume."""

    NAME = "image"

    def __init__(
        self,
        config: TargetConfig,
        client: DockerClient,
        run_id: str,
        log: Callable[[str], None] = lambda _msg: None,
    ) -> None:
        self.config = config
        self.client = client
        self.run_id = run_id
        self.log = log
        self.labels = engine.labels(run_id, config.name)
        self.prefix = engine.run_prefix(config.name, run_id)
        self.volume_name = self.prefix
        self.image_id = ""
        self.generation = 0
        self._volume_created = False
        self._container: DockerContainer | None = None
        self.strategy = strategy_for(config.readiness)

    @property
    def container(self) -> DockerContainer:
        if self._container is None:
            raise RuntimeError("the target has not been started")
        return self._container

    def start(self) -> float:
        self.log(f"resolving image {self.config.image_ref}")
        self.image_id = ensure_image(self.client, self.config)
        self.log(f"image {self.config.image_ref} is {self.image_id}; every container runs this id")
        with signals.shielded(resume=True):  # an interrupt waits until the engine is done
            self.client.volumes.create(name=self.volume_name, labels=self.labels)
            self._volume_created = True
        self.log(f"created volume {self.volume_name}; starting on it (fresh install)")
        return self._run()

    def _run(self) -> float:
        self.generation += 1
        kwargs: dict[str, object] = {
            "labels": self.labels,
            "restart_policy": {"Name": self.config.restart_policy},
        }
        healthcheck = self.config.readiness.healthcheck
        if isinstance(healthcheck, HealthcheckSpec):  # the config's, in place of the image's
            kwargs["healthcheck"] = engine_healthcheck(healthcheck)
        # The id this run resolved or built, never the tag: another audit may retag it meanwhile.
        tc = (
            # testcontainers' own client, on the engine persistaudit talks to (a context's too).
            TcContainer(self.image_id, docker_client_kw=_client_kw())
            .with_name(f"{self.prefix}-{self.generation}")
            .with_volume_mapping(self.volume_name, self.config.volume_mount, "rw")
            .with_kwargs(**kwargs)
        )
        for key, value in self.config.env.items():
            tc.with_env(key, value)
        if self.config.command:
            tc.with_command(self.config.command)
        local = engine.is_local()
        for port in published_ports(self.config):
            # On a local engine, loopback only: an audited service is not exposed to the network.
            binding = ("127.0.0.1", None) if local else None
            tc.ports[f"{port}/tcp"] = binding  # type: ignore[assignment]  # SDK takes (ip, port)
        try:
            # Not cut off mid-request: a container the engine goes on creating after an
            # interrupt could re-create the volume it names, unlabelled, after clean-up.
            with signals.shielded(resume=True), engine.without_reaper():
                tc.start()
        except docker.errors.APIError as exc:
            raise TargetBlocked(
                f"container for {self.config.name} could not start: {exc.explanation}",
                reason="start-failed",
                evidence={"reason": "start-failed", "engine_error": str(exc.explanation)},
            ) from None
        if not self._volume_is_ours():
            # Removed while no container held it: the engine made an empty, unlabelled one of
            # the same name for this container. Running on it would read as data loss.
            with contextlib.suppress(docker.errors.DockerException):
                tc.get_wrapped_container().remove(force=True, v=True)
            with contextlib.suppress(docker.errors.DockerException):
                self.client.volumes.get(self.volume_name).remove(force=True)
            raise TargetRemoved(f"volume {self.volume_name} was removed by something else")
        # testcontainers' guess of how to reach a remote engine's ports; a local one is loopback
        # (its guess sees a container here and picks the bridge gateway, which cannot reach it).
        host = "127.0.0.1" if local else tc.get_container_host_ip()
        self._container = DockerContainer(tc.get_wrapped_container(), host)
        return self._wait(restarts_before=0)

    def restart(self) -> float:
        before = self.container.state().restart_count
        self.log(f"docker restart {self.container.name}")
        with activity.during("waiting", f"restart: {self.container.name}"):
            self.client.api.restart(self.container.id, timeout=STOP_TIMEOUT)
        return self._wait(restarts_before=before)

    def recreate(self) -> float:
        old = self.container
        self.log(f"docker stop + rm {old.name} (volume {self.volume_name} kept)")
        # A container that is already gone was not stopped by this cycle: NotFound propagates,
        # and the audit reports it as removed by something else.
        with activity.during("waiting", f"stop: {old.name}"):
            self.client.api.stop(old.id, timeout=STOP_TIMEOUT)
        self.client.api.remove_container(old.id, v=True)
        self._container = None
        if not self._volume_is_ours():
            raise TargetRemoved(f"volume {self.volume_name} was removed by something else")
        self.log("starting a new container from the same image on the same volume")
        return self._run()

    def restore(
        self,
        files: dict[str, Path],
        scratch: Path,
        owners: Mapping[str, FileOwner] | None = None,
    ) -> Restored:
        """The same image id, env, command and ports, on a fresh volume seeded with files."""
        self.log(f"restore: starting {self.config.name} on a fresh volume seeded with a backup")
        return restore_image(
            self.config,
            self.client,
            self.image_id,
            self.prefix,
            self.labels,
            files,
            scratch,
            published_ports(self.config),
            owners,
        )

    def upgrade(self) -> Upgrade:
        """The previous version, then this run's image id, on a fresh volume of the run."""
        self.log(f"upgrade: installing the previous version of {self.config.name}")
        return Upgrade(
            self.client,
            self.config,
            f"{self.prefix}-upgrade",
            self.prefix,
            self.labels,
            published_ports(self.config),
            self.image_id,
        )

    def _volume_is_ours(self) -> bool:
        """The run's volume exists and is the one it created (same run label)."""
        try:
            labels = self.client.volumes.get(self.volume_name).attrs.get("Labels") or {}
        except docker.errors.NotFound:
            return False
        return bool(labels.get(engine.LABEL_RUN) == self.run_id)

    def missing(self) -> list[str]:
        gone = self._container_gone()
        if self._volume_created:
            try:
                if not self._volume_is_ours():
                    gone.append(f"volume {self.volume_name}")
            except engine.ENGINE_CALL_ERRORS:
                pass  # the engine cannot tell: no evidence of a removal
        return gone

    def describe(self) -> TargetInfo:
        digests: list[str] = []
        if self.image_id:
            with contextlib.suppress(docker.errors.DockerException):
                digests = list(self.client.images.get(self.image_id).attrs.get("RepoDigests") or [])
        return TargetInfo(
            name=self.config.name,
            driver=self.NAME,
            image=self.config.image_ref,
            image_id=self.image_id,
            repo_digests=digests,
            volume=self.volume_name,
            mount=self.config.volume_mount,
            databases=[d.path for d in self.config.declared_databases],
            restart_policy=self.config.restart_policy,
        )

    def close(self) -> cleanup.Removal:
        self._container = None
        return cleanup.remove_run(self.run_id, self.prefix)


def _client_kw() -> dict[str, object]:
    """testcontainers' client: on the same engine, and for ssh:// through paramiko as ours
    (its default shells out to the ssh command, which reads another known_hosts and config
    when HOME is not the user's passwd home)."""
    kwargs: dict[str, object] = {"use_ssh_client": False}
    environment = engine.sdk_environment()
    if environment is not None:
        kwargs["environment"] = environment
    return kwargs

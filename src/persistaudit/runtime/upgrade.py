"""An upgrade rehearsal: the previous version on a fresh volume, then the current one on it.

The volume and both containers carry the run's labels and name prefix, so the run's clean-up
(and `persistaudit clean`) finds them even when close() never ran. The previous version runs
as the config says (env, command, ports, readiness), only from another image; it is stopped
gracefully before the current image is started on the same volume, as an operator upgrades.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Protocol

import docker.errors
from docker import DockerClient

from persistaudit import signals
from persistaudit.config import TargetConfig, UpgradeFrom
from persistaudit.exceptions import ImageError, TargetRemoved, UpgradeError
from persistaudit.images import ensure_image
from persistaudit.readiness import strategy_for, wait_ready
from persistaudit.redact import MARKER, is_secret_name
from persistaudit.runtime.base import STOP_TIMEOUT, DockerContainer
from persistaudit.runtime.restore import container_kwargs, host_ip


def previous_config(config: TargetConfig) -> TargetConfig:
    """The target's config with the previous version's image or build in place of its own.

    A build without a tag gets its own (`persistaudit/NAME:previous`), so it never moves the
    tag of the current version's build.
    """
    source = config.upgrade_from
    if source is None:
        raise ValueError(f"{config.name}: no upgrade_from in the config")
    build = source.build
    if build is not None and build.tag is None:
        build = build.model_copy(update={"tag": f"persistaudit/{config.name}:previous"})
    return config.model_copy(update={"image": source.image, "build": build, "compose": None})


def describe(source: UpgradeFrom) -> str:
    """The previous version as the report names it."""
    if source.image is not None:
        return source.image
    assert source.build is not None
    args = " ".join(  # a build arg named like a secret (a token) is never shown
        f"--build-arg {k}={MARKER if is_secret_name(k) else v}"
        for k, v in source.build.args.items()
    )
    return f"build of {source.build.context} {args}".rstrip()


class Rehearsal(Protocol):
    """What the upgrade stage drives: the previous version installed, then the current one on
    its data; each driver has its own (Upgrade here, compose_upgrade.ComposeUpgrade)."""

    container: DockerContainer | None
    previous_image: str
    current_image: str
    previous_ready_s: float | None
    ready_s: float | None

    @property
    def volume(self) -> str:
        """The rehearsal's volume(s), as the report names them."""
        ...

    def install_previous(self) -> None: ...

    def upgrade(self) -> float: ...

    def close(self) -> list[str]: ...

    def install_steps(self) -> str:
        """The installation of the previous version as the commands it amounts to."""
        ...

    def upgrade_steps(self, previous_name: str) -> str:
        """The upgrade (previous_name's container replaced) as the commands it amounts to."""
        ...


@dataclass
class Upgrade:
    """The previous version running on its fresh volume, later the current one on it;
    close() removes what was made for it."""

    client: DockerClient
    config: TargetConfig
    volume: str
    prefix: str
    labels: dict[str, str]
    ports: list[int]
    current_image: str  # the id the audit runs: the version under audit
    previous_image: str = ""
    container: DockerContainer | None = None
    previous_ready_s: float | None = None
    ready_s: float | None = None
    removed: list[str] = field(default_factory=list)

    def _start(self, image_id: str, name: str) -> float:
        kwargs = container_kwargs(self.config, name, self.volume, self.labels, self.ports)
        try:
            with signals.shielded(resume=True):
                created = self.client.containers.create(image_id, **kwargs)
            self.container = DockerContainer(created, host_ip())
            created.start()
        except docker.errors.APIError as exc:
            raise UpgradeError(
                f"container {name} could not be started: the engine said {exc.explanation}"
            ) from None
        spec = self.config.readiness
        return wait_ready(
            self.container, strategy_for(spec), timeout=spec.timeout, interval=spec.interval
        )

    def install_previous(self) -> None:
        """Resolve the previous image and start it on the fresh volume until ready.

        UpgradeError when its image cannot be had or the engine refused a step; TargetBlocked
        when it does not become ready.
        """
        try:
            self.previous_image = ensure_image(self.client, previous_config(self.config))
        except ImageError as exc:
            raise UpgradeError(f"the previous version's image: {exc}") from None
        try:
            with signals.shielded(resume=True):
                self.client.volumes.create(name=self.volume, labels=self.labels)
        except docker.errors.APIError as exc:
            raise UpgradeError(
                f"volume {self.volume} could not be created: the engine said {exc.explanation}"
            ) from None
        self.previous_ready_s = self._start(self.previous_image, f"{self.prefix}-previous")

    def upgrade(self) -> float:
        """Stop the previous version gracefully, remove its container, and start the current
        image on the same volume until ready (TargetBlocked when it is not: a finding)."""
        old = self.container
        assert old is not None
        try:
            with signals.shielded(resume=True):
                self.client.api.stop(old.id, timeout=STOP_TIMEOUT)
                self.client.api.remove_container(old.id, v=False)
        except docker.errors.NotFound:
            raise TargetRemoved(f"container {old.name} was removed by something else") from None
        self.container = None
        self.ready_s = self._start(self.current_image, f"{self.prefix}-upgraded")
        return self.ready_s

    def install_steps(self) -> str:
        assert self.container is not None
        assert self.config.upgrade_from is not None
        return (
            f"docker volume create {self.volume}\n"
            f"docker run -d --name {self.container.name} -v {self.volume}:"
            f"{self.config.volume_mount} {self.previous_image}  "
            f"# {describe(self.config.upgrade_from)} (same env, command and ports)"
        )

    def upgrade_steps(self, previous_name: str) -> str:
        assert self.container is not None
        return (
            f"docker stop {previous_name} && docker rm {previous_name}  # volume kept\n"
            f"docker run -d --name {self.container.name} -v {self.volume}:"
            f"{self.config.volume_mount} {self.current_image}  # the audited image"
        )

    def close(self) -> list[str]:
        """Remove the container and the volume (idempotent); what was removed."""
        with signals.shielded():
            if self.container is not None:
                with contextlib.suppress(docker.errors.NotFound):
                    self.client.api.remove_container(self.container.id, force=True, v=True)
                    self.removed.append(f"container {self.container.name}")
                self.container = None
            with contextlib.suppress(docker.errors.NotFound):
                self.client.volumes.get(self.volume).remove(force=True)
                self.removed.append(f"volume {self.volume}")
        return self.removed

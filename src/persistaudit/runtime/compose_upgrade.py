"""An upgrade rehearsal of a compose target: the same model in a project of its own.

The project is the run's (PROJECT-upgrade: the run's labels on every container, volume and
network, so the run's clean-up and `persistaudit clean` find it even when close() never
ran), with fresh volumes, fresh bind folders and ephemeral ports, as the restore's. It is
first brought up with the audited service on the previous version's image (upgrade_from),
then `up` again with the audited image, as an operator upgrades a compose deployment:
compose stops and re-creates the service's container and keeps the project's named volumes
(checked: the new container must mount the same volumes, else no upgrade was rehearsed).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from docker import DockerClient

from persistaudit import signals
from persistaudit.config import TargetConfig
from persistaudit.exceptions import ComposeError, ImageError, UpgradeError
from persistaudit.images import ensure_image
from persistaudit.readiness import strategy_for, wait_ready
from persistaudit.runtime.base import STOP_TIMEOUT, DockerContainer
from persistaudit.runtime.compose_model import Rewritten
from persistaudit.runtime.compose_restore import down_project
from persistaudit.runtime.upgrade import describe, previous_config

if TYPE_CHECKING:
    from persistaudit.runtime.compose import Compose


@dataclass
class ComposeUpgrade:
    """The rehearsal's compose project: the previous image, later the audited one, on the
    same named volumes; close() brings it down with its volumes."""

    client: DockerClient
    config: TargetConfig
    rewritten: Rewritten  # the model as PROJECT-upgrade runs it (labels, fresh volumes)
    compose: Compose  # its model file is rewritten for each version
    find: Callable[[], DockerContainer]  # the audited service's container in the project
    service: str
    current_image: str  # the id the audit runs: the version under audit
    folder: Path  # the model and the bind folders, removed with the project
    previous_image: str = ""
    container: DockerContainer | None = None
    previous_ready_s: float | None = None
    ready_s: float | None = None
    removed: list[str] = field(default_factory=list)
    closed: bool = False
    _volumes: dict[str, str] = field(default_factory=dict)  # mount target -> volume name

    @property
    def volume(self) -> str:
        return ", ".join(self.rewritten.volumes) or "(none)"

    @property
    def _model_file(self) -> Path:
        return Path((self.compose.compose_file_name or [""])[0])

    def _write_model(self, image_id: str) -> None:
        """The rehearsal's model with the audited service run from image_id (no build)."""
        model: dict[str, Any] = copy.deepcopy(self.rewritten.model)
        service = model["services"][self.service]
        service.pop("build", None)
        service["image"] = image_id
        service["pull_policy"] = "never"
        self._model_file.write_text(json.dumps(model, indent=1))

    def _up(self, image_id: str, what: str) -> float:
        self._write_model(image_id)
        try:
            with signals.shielded(resume=True):  # what compose goes on creating is labelled
                self.compose.run("up", "--detach", "--no-build", "--timeout", str(STOP_TIMEOUT))
        except ComposeError as exc:
            raise UpgradeError(
                f"compose project {self.compose.project} could not start {what}: {exc}"
            ) from None
        self.container = self.find()
        spec = self.config.readiness
        return wait_ready(
            self.container, strategy_for(spec), timeout=spec.timeout, interval=spec.interval
        )

    def install_previous(self) -> None:
        """Resolve the previous image and bring the project up with it until ready.

        UpgradeError when its image cannot be had or compose refused a step; TargetBlocked
        when it does not become ready.
        """
        try:
            self.previous_image = ensure_image(self.client, previous_config(self.config))
        except ImageError as exc:
            raise UpgradeError(f"the previous version's image: {exc}") from None
        self.previous_ready_s = self._up(self.previous_image, "the previous version")
        assert self.container is not None
        self._volumes = _named_volumes(self.container)

    def upgrade(self) -> float:
        """`up` with the audited image: compose re-creates the service's container on the same
        volumes; ready (TargetBlocked when it is not: a finding). UpgradeError when compose
        did not run the audited image on the previous version's volumes."""
        previous = self.container
        assert previous is not None
        self.ready_s = self._up(self.current_image, "the current version")
        assert self.container is not None
        running = str(self.container.attrs.get("Image", ""))
        if self.container.id == previous.id or running != self.current_image:
            raise UpgradeError(
                f"compose did not re-create service {self.service} from the audited image "
                f"{self.current_image} (its container runs {running or 'no image'})"
            )
        now = _named_volumes(self.container)
        lost = {t: v for t, v in self._volumes.items() if now.get(t) != v}
        if lost:
            raise UpgradeError(
                f"compose did not keep the previous version's volumes on {self.service}: "
                + ", ".join(f"{v} at {t} (now {now.get(t) or 'none'})" for t, v in lost.items())
            )
        return self.ready_s

    def install_steps(self) -> str:
        assert self.config.upgrade_from is not None
        base = f"docker compose -p {self.compose.project} -f {self._model_file}"
        return (
            f"{base} up --detach --no-build  # fresh volumes {self.volume}; service "
            f"{self.service} on {self.previous_image}: {describe(self.config.upgrade_from)}"
        )

    def upgrade_steps(self, previous_name: str) -> str:
        base = f"docker compose -p {self.compose.project} -f {self._model_file}"
        return (
            f"{base} up --detach --no-build  # service {self.service} on "
            f"{self.current_image}, the audited image: compose stopped and removed "
            f"{previous_name} and re-created it on the same volumes"
        )

    def close(self) -> list[str]:
        """`compose down --volumes` and the folder (idempotent); what was removed."""
        with signals.shielded():
            if not self.closed:
                self.closed = True
                self.container = None
                self.removed += down_project(self.compose, self.client, self.folder)
        return self.removed


def _named_volumes(container: DockerContainer) -> dict[str, str]:
    """Mount target -> volume name of the container's named volumes."""
    return {
        m.destination: m.name
        for m in container.mounts()
        if m.type == "volume" and m.name and not m.anonymous
    }

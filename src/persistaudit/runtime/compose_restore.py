"""A restore rehearsal of a compose target: the same model in a project of its own.

The project is the run's (PROJECT-restore: the run's labels on every container, volume and
network, so the run's clean-up and `persistaudit clean` find it even when close() never
ran), with fresh volumes and ephemeral ports (it never clashes with the audited project).
It is created without starting (`up --no-start`), the backup is put into the audited
service's created container (the engine mounts its volumes for the copy), and only then
started: the service's first start already finds its restored database.
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import docker.errors
from docker import DockerClient

from persistaudit import signals
from persistaudit.config import TargetConfig
from persistaudit.exceptions import ComposeError, RestoreError, TargetBlocked, TargetRemoved
from persistaudit.readiness import strategy_for, wait_ready
from persistaudit.runtime.base import STOP_TIMEOUT, DockerContainer
from persistaudit.runtime.restore import FileOwner, Restored, seed

if TYPE_CHECKING:
    from persistaudit.runtime.compose import Compose

PROJECT_LABEL = "com.docker.compose.project"


@dataclass
class ComposeRestored(Restored):
    """The restore's compose project; close() brings it down with its volumes."""

    compose: Compose | None = None
    folder: Path | None = None  # the restore's model and bind folders
    closed: bool = field(default=False)

    def close(self) -> list[str]:
        """`compose down --volumes` (idempotent); what was removed. Should compose fail, what
        carries the project's label is removed through the engine."""
        with signals.shielded():
            if self.closed or self.compose is None:
                return self.removed
            self.closed = True
            self.container = None
            self.removed += down_project(self.compose, self.client, self.folder)
        return self.removed


def down_project(compose: Compose, client: DockerClient, folder: Path | None) -> list[str]:
    """`compose down --volumes` of a rehearsal's own project, and its folder; what was
    removed. Should compose fail, what carries the project's label is removed through the
    engine. Call it shielded."""
    project = compose.project
    try:
        compose.run("down", "--volumes", "--remove-orphans", "--timeout", str(STOP_TIMEOUT))
        removed = [f"compose project {project} and its volumes"]
    except ComposeError:
        removed = _remove_project(client, project)
    if folder is not None:
        shutil.rmtree(folder, ignore_errors=True)
    return removed


def _remove_project(client: DockerClient, project: str) -> list[str]:
    """Remove the containers, volumes and networks labelled as project's; what was removed."""
    removed = []
    filters: dict[str, str | list[str] | bool] = {"label": f"{PROJECT_LABEL}={project}"}
    with contextlib.suppress(docker.errors.DockerException):
        for container in client.containers.list(all=True, filters=filters):
            with contextlib.suppress(docker.errors.NotFound):
                container.remove(force=True, v=True)
                removed.append(f"container {container.name}")
    with contextlib.suppress(docker.errors.DockerException):
        for volume in client.volumes.list(filters=filters):
            with contextlib.suppress(docker.errors.NotFound):
                volume.remove(force=True)
                removed.append(f"volume {volume.name}")
    with contextlib.suppress(docker.errors.DockerException):
        for network in client.networks.list(filters=filters):
            with contextlib.suppress(docker.errors.NotFound):
                network.remove()
                removed.append(f"network {network.name}")
    return removed


def restore_compose(
    compose: Compose,
    client: DockerClient,
    find: Callable[[], DockerContainer],
    volumes: str,
    files: dict[str, Path],
    scratch: Path,
    owners: Mapping[str, FileOwner] | None,
    config: TargetConfig,
) -> Restored:
    """Create compose's project, put files into the container find() returns, start the
    project and wait until the service is ready: TargetBlocked when it does not become ready
    on them (a finding), RestoreError when compose or the engine refused a step. Nothing is
    left unless returned."""
    project = compose.project
    model = " ".join(f"-f {f}" for f in compose.compose_file_name or [])
    # The model's folder holds the restore's binds too: removed with the project.
    restored = ComposeRestored(client, volumes, "", compose=compose, folder=Path(compose.context))
    base = f"docker compose -p {project} {model}"
    restored.steps = (
        f"{base} up --no-start --no-build  # fresh volumes {volumes or '(none)'}\n"
        f"docker cp the backup to {', '.join(sorted(files))} (the created container)\n"
        f"{base} start"
    )
    try:
        try:
            with signals.shielded(resume=True):
                compose.run("up", "--no-start", "--no-build")
            container = find()
        except (ComposeError, TargetRemoved, TargetBlocked) as exc:
            raise RestoreError(
                f"the restore could not be prepared: compose project {project} was not "
                f"created: {exc}"
            ) from None
        restored.container, restored.name = container, container.name
        try:
            seed(client.containers.get(container.id), files, "/", scratch, owners)
        except docker.errors.APIError as exc:
            raise RestoreError(
                f"the restore could not be prepared: the backup could not be put into "
                f"{container.name}: the engine said {exc.explanation}"
            ) from None
        try:
            with signals.shielded(resume=True):
                compose.run("start")
        except ComposeError as exc:
            raise RestoreError(
                f"the restore could not be prepared: compose project {project} did not start: {exc}"
            ) from None
        spec = config.readiness
        restored.ready_s = wait_ready(
            container, strategy_for(spec), timeout=spec.timeout, interval=spec.interval
        )
    except BaseException:
        restored.close()
        raise
    return restored

"""A restore rehearsal: the audited image started on a fresh volume seeded with a backup.

The volume and the container carry the run's labels and the run's name prefix, so the run's
clean-up (and `persistaudit clean`) finds them even when close() never ran. The backup is put
into a created, not yet started, container (the engine mounts its volume for the copy), so
the service's first start already finds it.
"""

from __future__ import annotations

import contextlib
import tarfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import docker.errors
from docker import DockerClient
from docker.models.containers import Container

from persistaudit import engine, signals
from persistaudit.config import HealthcheckSpec, TargetConfig
from persistaudit.exceptions import RestoreError
from persistaudit.readiness import strategy_for, wait_ready
from persistaudit.runtime.base import DockerContainer


@dataclass(frozen=True)
class FileOwner:
    """A file's owner, group and permission bits, as the engine's archive of it says."""

    uid: int
    gid: int
    mode: int  # permission bits only (0o644)

    @classmethod
    def of(cls, member: tarfile.TarInfo) -> FileOwner:
        return cls(member.uid, member.gid, member.mode & 0o7777)


ROOT_OWNER = FileOwner(0, 0, 0o644)  # what a restored file gets when the live one's is unknown


@dataclass
class Restored:
    """The service running on a restored backup; close() removes what was made for it."""

    client: DockerClient
    volume: str
    name: str
    container: DockerContainer | None = None
    ready_s: float | None = None
    removed: list[str] = field(default_factory=list)
    steps: str = ""  # what the restore amounts to as shell commands, for evidence

    def close(self) -> list[str]:
        """Remove the container and the volume (idempotent); what was removed."""
        with signals.shielded():
            if self.container is not None:
                with contextlib.suppress(docker.errors.NotFound):
                    self.client.api.remove_container(self.container.id, force=True, v=True)
                    self.removed.append(f"container {self.name}")
                self.container = None
            with contextlib.suppress(docker.errors.NotFound):
                self.client.volumes.get(self.volume).remove(force=True)
                self.removed.append(f"volume {self.volume}")
        return self.removed


def host_ip() -> str:
    """Where the engine publishes ports: loopback for a local engine, else its address's host."""
    return engine.published_host()


def container_kwargs(
    config: TargetConfig, name: str, volume: str, labels: dict[str, str], ports: list[int]
) -> dict[str, Any]:
    """containers.create's arguments for the target as the config runs it, on volume: its env,
    command, restart policy, healthcheck and ports (loopback only on a local engine)."""
    kwargs: dict[str, Any] = {
        "name": name,
        "labels": labels,
        "environment": dict(config.env),
        "volumes": {volume: {"bind": config.volume_mount, "mode": "rw"}},
        "restart_policy": {"Name": config.restart_policy},
        "detach": True,
    }
    if config.command:
        kwargs["command"] = list(config.command)
    healthcheck = config.readiness.healthcheck
    if isinstance(healthcheck, HealthcheckSpec):
        from persistaudit.runtime.image import engine_healthcheck

        kwargs["healthcheck"] = engine_healthcheck(healthcheck)
    binding = ("127.0.0.1", None) if engine.is_local() else None
    kwargs["ports"] = {f"{port}/tcp": binding for port in ports}
    return kwargs


def _archive(
    files: dict[str, Path],
    mount: str,
    scratch: Path,
    owners: Mapping[str, FileOwner] | None = None,
) -> tuple[str, Path]:
    """A tar of the files (container path -> host file), to unpack at the returned folder.

    Each file gets the owner, group and mode owners gives for its path (the live file's: a
    service running as a non-root user must be able to write its restored database), else
    root's 0644. Names are left out, so the engine applies the numeric ids as they are.
    """
    mount_path = PurePosixPath(mount)
    paths = [PurePosixPath(p) for p in files]
    under = all(p.is_relative_to(mount_path) for p in paths)
    root = mount_path if under else PurePosixPath("/")
    tar_path = scratch / "restore.tar"
    with tarfile.open(tar_path, "w") as tar:
        for path, host in files.items():
            info = tar.gettarinfo(str(host), arcname=str(PurePosixPath(path).relative_to(root)))
            owner = (owners or {}).get(path, ROOT_OWNER)
            info.uid, info.gid, info.mode = owner.uid, owner.gid, owner.mode
            info.uname = info.gname = ""
            with host.open("rb") as f:
                tar.addfile(info, f)
    return str(root), tar_path


def seed(
    container: Container,
    files: dict[str, Path],
    mount: str,
    scratch: Path,
    owners: Mapping[str, FileOwner] | None = None,
) -> None:
    """Put files into a created, not yet started, container (the engine mounts its volumes
    for the copy), with their owners: the service's first start finds them in place."""
    folder, tar_path = _archive(files, mount, scratch, owners)
    try:
        with tar_path.open("rb") as data:
            container.put_archive(folder, data)
    finally:
        tar_path.unlink(missing_ok=True)


def restore_image(
    config: TargetConfig,
    client: DockerClient,
    image_id: str,
    prefix: str,
    labels: dict[str, str],
    files: dict[str, Path],
    scratch: Path,
    ports: list[int],
    owners: Mapping[str, FileOwner] | None = None,
) -> Restored:
    """Start image_id as the config says, on a fresh volume holding files, and wait until
    ready: TargetBlocked when the service does not become ready on them (a finding),
    RestoreError when the engine refused a step. Nothing is left unless returned."""
    name = f"{prefix}-restore"
    with signals.shielded(resume=True):
        client.volumes.create(name=name, labels=labels)
    restored = Restored(client, name, name)
    restored.steps = (
        f"docker volume create {name}\n"
        f"docker create ... -v {name}:{config.volume_mount} (same image, env and command); "
        f"docker cp the backup to {', '.join(sorted(files))}; docker start {name}"
    )
    try:
        kwargs = container_kwargs(config, name, name, labels, ports)
        try:
            with signals.shielded(resume=True):
                created = client.containers.create(image_id, **kwargs)
            restored.container = DockerContainer(created, host_ip())
            seed(created, files, config.volume_mount, scratch, owners)
            created.start()
        except docker.errors.APIError as exc:
            # The engine's refusal (a port, a path it cannot copy to), not the backup's fault:
            # the restore could not be rehearsed.
            raise RestoreError(
                f"the restore could not be prepared: the engine said {exc.explanation}"
            ) from None
        spec = config.readiness
        restored.ready_s = wait_ready(
            restored.container,
            strategy_for(spec),
            timeout=spec.timeout,
            interval=spec.interval,
        )
    except BaseException:
        restored.close()
        raise
    return restored

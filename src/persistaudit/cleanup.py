"""Remove what persistaudit created: one run's resources when it ends, and `clean`'s leftovers.

The engine races with clean-up: a container still being created or removed holds its volume
(409 "volume is in use", "removal already in progress"), and a volume removed while a
container that names it is being created comes back without labels. So containers go first,
409s are retried, a run's resources are found by its label and by its names, and removal
ends only when a listing a moment later finds nothing, or at a deadline with a warning that
names what is left. Never a traceback: clean-up also runs while a run is being interrupted.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import docker
import docker.errors
import requests
from docker import DockerClient

from persistaudit import docker_context, engine, signals
from persistaudit.engine import LABEL_RUN
from persistaudit.exceptions import EngineUnavailable

DEADLINE_S = 20.0  # a CI system's grace period before SIGKILL is often 10 to 30 s
SETTLE_S = 0.1  # a second listing this much later finds what was still being created
RETRY_MAX_S = 1.0
PARALLEL_REMOVALS = 4  # containers removed at the same time
SSH_BASE_URL = "http+docker://ssh"  # the SDK's base URL for an ssh:// engine
KIND_ORDER = {"container": 0, "volume": 1, "network": 2}  # containers hold volumes, networks
# The engine refused or could not be reached; over ssh:// paramiko's own errors too (a
# channel the host's MaxSessions refuses): the resource is left behind and said so.
ENGINE_ERRORS: tuple[type[Exception], ...] = (
    *engine.ENGINE_CALL_ERRORS,
    requests.RequestException,
    EngineUnavailable,
)

_left_behind: list[str] = []


@dataclass(frozen=True)
class Resource:
    kind: str  # container, volume, network
    name: str
    id: str
    labels: dict[str, str]

    def __str__(self) -> str:
        return f"{self.kind} {self.name}"


@dataclass
class Removal:
    removed: list[str] = field(default_factory=list)
    left: dict[str, str] = field(default_factory=dict)  # "volume x" -> why it is still there

    def warning(self) -> str:
        """One line naming what could not be removed, and how to remove it by hand."""
        items = "; ".join(f"{what} ({why})" for what, why in self.left.items())
        return (
            f"warning: could not remove {items}. Hint: `docker rm -f` the containers and "
            "`docker volume rm` the volumes, or run `persistaudit clean` later"
        )


def left_behind() -> list[str]:
    """What this process's clean-ups could not remove."""
    return list(_left_behind)


def list_resources(
    client: DockerClient, *, label: str | None = None, prefix: str | None = None
) -> list[Resource]:
    """Containers, volumes and networks with a label (key=value), or named prefix[-...]."""
    filters = {"label": label} if label else {"name": prefix}
    found = [
        *(
            # A container the engine is creating or removing may have no name left: its id.
            Resource(
                "container",
                str((c.get("Names") or [c["Id"]])[0]).lstrip("/"),
                str(c["Id"]),
                c.get("Labels") or {},
            )
            for c in client.api.containers(all=True, filters=filters)
        ),
        *(
            Resource("volume", str(v["Name"]), str(v["Name"]), v.get("Labels") or {})
            for v in client.api.volumes(filters=filters).get("Volumes") or []
        ),
        *(
            Resource("network", str(n["Name"]), str(n["Id"]), n.get("Labels") or {})
            for n in client.api.networks(filters=filters)
        ),
    ]
    if prefix:  # the engine's name filter matches anywhere in the name
        found = [r for r in found if r.name == prefix or r.name.startswith(prefix + "-")]
    return found


def remove_run(
    run_id: str,
    prefix: str,
    *,
    client: DockerClient | None = None,
    deadline_s: float = DEADLINE_S,
) -> Removal:
    """Remove everything of one run: labelled with its run id, or named with its prefix.

    Without a client, it opens its own: an interrupt may have cut the run's connection off
    in the middle of a request. Signals wait until it is done.
    """
    with signals.shielded():
        own = client is None
        try:
            if client is None:
                client = engine.client_for(docker_context.resolve(), timeout=30)
            removal = _remove_until_gone(client, run_id, prefix, deadline_s)
        except ENGINE_ERRORS as exc:
            removal = Removal(left={f"the resources of run {run_id}": _reason(exc)})
        finally:
            if own and client is not None:
                client.close()
        _left_behind.extend(removal.left)
        return removal


def remove_scratch(prefix: str) -> list[str]:
    """Remove a run's scratch folders (host copies of its database) from the temp dir."""
    removed = []
    for folder in sorted(Path(tempfile.gettempdir()).glob(f"{prefix}-*")):
        if folder.is_dir() and not folder.is_symlink():
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(f"scratch folder {folder}")
    return removed


def remove_resources(
    client: DockerClient, resources: list[Resource], *, deadline_s: float = DEADLINE_S
) -> Removal:
    """Remove these resources (containers first), retrying while the engine says busy."""
    with signals.shielded():
        removal = Removal()
        pending = sorted(resources, key=lambda r: KIND_ORDER[r.kind])
        end = time.monotonic() + deadline_s
        wait = SETTLE_S
        while pending:
            problems = _remove_each(client, pending, removal)
            pending = [r for r in pending if str(r) in problems]
            if pending and time.monotonic() >= end:
                removal.left.update(problems)
                break
            if pending:
                time.sleep(wait)
                wait = min(wait * 2, RETRY_MAX_S)
        _left_behind.extend(removal.left)
        return removal


def _remove_until_gone(
    client: DockerClient, run_id: str, prefix: str, deadline_s: float
) -> Removal:
    removal = Removal()
    end = time.monotonic() + deadline_s
    wait = SETTLE_S
    passes = 0
    while True:
        found: list[Resource] | None
        try:
            found = _of_run(client, run_id, prefix)
        except ENGINE_ERRORS as exc:  # the engine is busy or restarting: try again
            found, problems = None, {f"the resources of run {run_id}": _reason(exc)}
        else:
            if not found and passes:
                return removal  # nothing there, and nothing appeared since the last pass
            problems = _remove_each(client, found, removal)
        if time.monotonic() >= end:
            if found is not None:
                problems = {
                    str(r): problems.get(str(r), "still there")
                    for r in _of_run(client, run_id, prefix)
                }
            removal.left = problems
            return removal
        passes += 1
        time.sleep(wait)
        wait = min(wait * 2, RETRY_MAX_S) if problems or found is None else SETTLE_S


def _of_run(client: DockerClient, run_id: str, prefix: str) -> list[Resource]:
    by_key: dict[tuple[str, str], Resource] = {}
    for resource in (
        *list_resources(client, label=f"{LABEL_RUN}={run_id}"),
        *list_resources(client, prefix=prefix),
    ):
        by_key[resource.kind, resource.id] = resource
    return sorted(by_key.values(), key=lambda r: KIND_ORDER[r.kind])


def _remove_each(
    client: DockerClient, resources: list[Resource], removal: Removal
) -> dict[str, str]:
    """Remove each, kind by kind (containers first); returns why each one that is still
    there could not be removed.

    The containers go at the same time: each forced removal is a kill and an unmount that
    takes the engine about 0.2 s, one after another for a compose project's services or a
    backup's restore container. Not over ssh://, where each request at once is a channel
    and the host's MaxSessions may refuse one.
    """
    problems: dict[str, str] = {}
    workers = 1 if client.api.base_url.startswith(SSH_BASE_URL) else PARALLEL_REMOVALS
    for kind in KIND_ORDER:
        group = [r for r in resources if r.kind == kind]
        if len(group) > 1 and workers > 1:
            with ThreadPoolExecutor(min(workers, len(group)), "persistaudit-rm") as pool:
                outcomes = list(pool.map(lambda r: _remove_one(client, r), group))
        else:
            outcomes = [_remove_one(client, r) for r in group]
        for resource, problem in zip(group, outcomes, strict=True):
            if problem is not None:
                problems[str(resource)] = problem
            elif str(resource) not in removal.removed:
                removal.removed.append(str(resource))
    return problems


def _remove_one(client: DockerClient, resource: Resource) -> str | None:
    """Remove one resource; None once it is gone, else why it is still there."""
    try:
        if resource.kind == "container":
            client.api.remove_container(resource.id, force=True, v=True)
        elif resource.kind == "volume":
            client.api.remove_volume(resource.name, force=True)
        else:
            client.api.remove_network(resource.id)
    except docker.errors.NotFound:
        pass  # gone meanwhile (removed by its own run, or by `clean`)
    except ENGINE_ERRORS as exc:
        return _reason(exc)  # 409 in use / removal in progress: retried
    return None


def _reason(exc: Exception) -> str:
    explanation = getattr(exc, "explanation", None)
    text = str(explanation or exc or type(exc).__name__)
    return text.splitlines()[0] if text else type(exc).__name__

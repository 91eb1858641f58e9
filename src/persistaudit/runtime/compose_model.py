"""Rewrite a resolved compose model (`docker compose config --format json`) for one audit run.

What the audit runs is the author's model with what makes it safe and the run's own: one
project per run; persistaudit's labels on every service, volume and network (clean-up finds
them by label); volume and network names of the run's (never a user's existing volume);
published ports on ephemeral loopback ports (two runs never clash); writable bind mounts
redirected to fresh folders of the run (never the user's tree). Pure, apart from reading what
a bind's source is and copying a file bind's source into the run's folder.
"""

from __future__ import annotations

import copy
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from persistaudit.config import HealthcheckSpec
from persistaudit.hostfs import is_network
from persistaudit.runtime.base import DeclaredMount
from persistaudit.sqlite_files import MAGIC, is_sqlite


@dataclass
class Rewritten:
    """The model compose runs, and what the audit needs to know about what was changed."""

    model: dict[str, Any]
    declared: list[DeclaredMount]  # the audited service's mounts as the author declared them
    volumes: list[str] = field(default_factory=list)  # the run's named volumes (engine names)
    notes: list[str] = field(default_factory=list)  # what was changed, for the run's log


def _dict(value: Any) -> dict[str, Any]:
    return dict(value) if isinstance(value, dict) else {}


def _labels(value: Any) -> dict[str, str]:
    """Compose labels as a mapping; compose also accepts a list of key=value strings."""
    if isinstance(value, list):
        return dict(str(item).partition("=")[::2] for item in value)
    return {str(k): str(v) for k, v in _dict(value).items()}


def seconds(value: float) -> str:
    """A duration as compose writes one ("1.5s")."""
    return f"{value:g}s"


def compose_healthcheck(spec: HealthcheckSpec) -> dict[str, Any]:
    return {
        "test": list(spec.test),
        "interval": seconds(spec.interval),
        "timeout": seconds(spec.timeout),
        "retries": spec.retries,
        "start_period": seconds(spec.start_period),
    }


def has_healthcheck(service: dict[str, Any]) -> bool | None:
    """True/False when the service's model says (its own healthcheck or disable), else None."""
    check = _dict(service.get("healthcheck"))
    if check.get("disable"):
        return False
    test = check.get("test")
    if test:
        return not (isinstance(test, list) and test[:1] == ["NONE"])
    return None


def network_fs_of_volume(key: str, volume: dict[str, Any]) -> str:
    """Why a named volume is on a network filesystem ("" when it is not), from its options."""
    opts = _dict(volume.get("driver_opts"))
    fs_type = str(opts.get("type", ""))
    if is_network(fs_type):
        return f"volume {key} has driver_opts type={fs_type}"
    driver = str(volume.get("driver", "") or "")
    if driver and driver != "local" and is_network(driver.split("/")[-1].split(":")[0]):
        return f"volume {key} uses the {driver} volume driver"
    return ""


_UNSAFE = re.compile(r"[^a-z0-9_.-]+")


def image_tag(target: str, service: str) -> str:
    """The tag persistaudit gives a compose service's build (never the author's image name)."""
    return f"persistaudit/{_UNSAFE.sub('-', f'{target}-{service}'.lower())}:audit"


@dataclass
class _Context:
    project: str
    labels: dict[str, str]
    scratch: Path
    bind_mounts: str
    fs_type: Callable[[str], str]
    notes: list[str]
    binds: int = 0


def rewrite(
    model: dict[str, Any],
    *,
    service: str,
    project: str,
    labels: dict[str, str],
    scratch: Path,
    bind_mounts: str = "redirect",
    env: dict[str, str] | None = None,
    ports: list[int] | None = None,
    healthcheck: HealthcheckSpec | None = None,
    built: dict[str, str] | None = None,
    local_images: set[str] | None = None,
    loopback: bool = True,
    fs_type: Callable[[str], str] = lambda _path: "",
) -> Rewritten:
    """The model of one audit run of `service`; bind folders are made under scratch.

    built: service -> image id compose built for it (run by id, as the image driver does);
    local_images: image references the engine has, run without a pull; fs_type: the
    filesystem type of a host path (a bind on NFS or CIFS is flagged).
    """
    out = copy.deepcopy(model)
    ctx = _Context(project, labels, scratch, bind_mounts, fs_type, [])
    out["name"] = project
    services = _dict(out.get("services"))
    built = built or {}
    local_images = local_images or set()
    declared: list[DeclaredMount] = []
    top_volumes = _dict(out.get("volumes"))
    for name, spec in services.items():
        spec = _dict(spec)
        spec["labels"] = {**_labels(spec.get("labels")), **labels}
        spec.pop("profiles", None)  # the model holds the active services only
        if "container_name" in spec:
            _rename_container(spec, project)
        if name in built:
            spec.pop("build", None)
            spec["image"] = built[name]
            spec["pull_policy"] = "never"
        elif spec.get("image") in local_images:
            spec["pull_policy"] = "never"  # works offline, with a locally built image
        spec["ports"] = [_ephemeral(p, loopback) for p in spec.get("ports") or []]
        mounts = []
        for mount in spec.get("volumes") or []:
            new, intent = _mount(_dict(mount), ctx, top_volumes)
            mounts.append(new)
            if name == service:
                declared.append(intent)
        spec["volumes"] = mounts
        if name == service:
            _audited(spec, env or {}, ports or [], healthcheck, loopback)
        services[name] = spec
    out["services"] = services
    volumes = []
    for key, volume in top_volumes.items():
        volume = _dict(volume)
        if volume.pop("external", False):
            ctx.notes.append(f"external volume {key} replaced by a fresh volume of the run")
            volume.pop("driver", None)
            volume.pop("driver_opts", None)
        volume["name"] = f"{project}_{key}"
        volume["labels"] = {**_labels(volume.get("labels")), **labels}
        top_volumes[key] = volume
        volumes.append(volume["name"])
    out["volumes"] = top_volumes
    networks = _dict(out.get("networks"))
    for key, network in networks.items():
        network = _dict(network)
        if network.pop("external", False):
            ctx.notes.append(f"external network {key} replaced by a network of the run")
            network.pop("driver", None)
        network["name"] = f"{project}_{key}"
        network["labels"] = {**_labels(network.get("labels")), **labels}
        networks[key] = network
    out["networks"] = networks
    return Rewritten(out, declared, volumes, ctx.notes)


def _rename_container(spec: dict[str, Any], project: str) -> None:
    """A fixed container name clashes between runs: the run's, with the old one as an alias."""
    old = str(spec.pop("container_name"))
    spec["container_name"] = f"{project}-{old}"
    if spec.get("network_mode"):
        return
    networks = spec.get("networks") or {"default": None}
    if isinstance(networks, list):
        networks = dict.fromkeys(networks)
    for key, value in list(networks.items()):
        value = _dict(value)
        value["aliases"] = sorted({*(value.get("aliases") or []), old})
        networks[key] = value
    spec["networks"] = networks


def _ephemeral(port: Any, loopback: bool) -> dict[str, Any]:
    """A published port on a port the engine picks, on loopback when the engine is local."""
    out = _dict(port)
    out.pop("published", None)
    if loopback:
        out["host_ip"] = "127.0.0.1"
    return out


def _audited(
    spec: dict[str, Any],
    env: dict[str, str],
    ports: list[int],
    healthcheck: HealthcheckSpec | None,
    loopback: bool,
) -> None:
    """The audited service: the config's env added, the ports the audit talks to published."""
    environment = spec.get("environment") or {}
    if isinstance(environment, list):
        environment = dict(str(item).partition("=")[::2] for item in environment)
    spec["environment"] = {**environment, **env}
    published = {
        int(p.get("target", 0)) for p in spec["ports"] if p.get("protocol", "tcp") == "tcp"
    }
    for port in ports:
        if port not in published:
            spec["ports"].append(_ephemeral({"target": port, "protocol": "tcp"}, loopback))
    if healthcheck is not None:
        spec["healthcheck"] = compose_healthcheck(healthcheck)


def _mount(
    mount: dict[str, Any], ctx: _Context, top_volumes: dict[str, Any]
) -> tuple[dict[str, Any], DeclaredMount]:
    kind = str(mount.get("type", "volume"))
    source = str(mount.get("source", "") or "")
    target = str(mount.get("target", ""))
    read_only = bool(mount.get("read_only", False))
    if kind == "volume":
        if not source:
            return mount, DeclaredMount("anonymous", "", target, read_only)
        network = network_fs_of_volume(source, _dict(top_volumes.get(source)))
        return mount, DeclaredMount("volume", source, target, read_only, network)
    if kind != "bind":
        return mount, DeclaredMount(kind, source, target, read_only)
    fs_type = ctx.fs_type(source) if source else ""
    network = f"bind source {source} is on {fs_type}" if is_network(fs_type) else ""
    new, redirected = _bind(mount, ctx, source, read_only)
    return new, DeclaredMount("bind", source, target, read_only, network, redirected)


def _bind(
    mount: dict[str, Any], ctx: _Context, source: str, read_only: bool
) -> tuple[dict[str, Any], str]:
    """The bind as the run mounts it, and the run's folder it now comes from ("" if kept).

    A folder (or a source that does not exist, which the engine would create in the user's
    tree) becomes a fresh empty folder; a file becomes a copy; a declared read-only bind of an
    existing path stays (nothing can write to it), and with bind_mounts: read-only every bind
    of an existing path stays, mounted read-only. Sockets and devices are left as they are.
    """
    mount = dict(mount)
    mount["bind"] = {**_dict(mount.get("bind")), "create_host_path": False}
    path = Path(source)
    exists = path.exists()
    if exists and (read_only or ctx.bind_mounts == "read-only"):
        if not read_only:
            ctx.notes.append(f"bind {source} mounted read-only (bind_mounts: read-only)")
        mount["read_only"] = True
        return mount, ""
    if exists and not (path.is_dir() or path.is_file()):
        ctx.notes.append(f"bind {source} is neither a folder nor a file: mounted as it is")
        return mount, ""
    ctx.binds += 1
    folder = ctx.scratch / f"bind-{ctx.binds}"
    folder.mkdir(parents=True)
    if exists and path.is_file():
        dest = folder / path.name
        with path.open("rb") as head:
            database = is_sqlite(head.read(len(MAGIC)))
        if database:  # a fresh install starts without the user's data
            dest.touch()
            what = "a fresh empty file"
        else:  # configuration the service needs: the run's own copy
            shutil.copyfile(path, dest)
            what = "a copy"
    else:
        dest = folder / (path.name or "root")
        dest.mkdir()
        what = "a fresh empty folder"
    mount["source"] = str(dest)
    if ctx.bind_mounts == "read-only":
        mount["read_only"] = True
    ctx.notes.append(f"bind {source} redirected to {what}: {dest}")
    return mount, str(dest)

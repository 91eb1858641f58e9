"""Target runtimes: how a target is started, restarted and re-created on its volume.

One driver per kind of target behind the same interface (base.Runtime handing out a
base.ContainerHandle), chosen from DRIVERS by the config, so the suites do not know whether a
target came from an image or, later, a compose file.
"""

from __future__ import annotations

from collections.abc import Callable

from docker import DockerClient

from persistaudit.config import TargetConfig
from persistaudit.images import ensure_image
from persistaudit.runtime.base import (
    ContainerHandle,
    DeclaredMount,
    DockerContainer,
    Mount,
    Runtime,
    TargetInfo,
)
from persistaudit.runtime.compose import ComposeRuntime
from persistaudit.runtime.compose import prepare as prepare_compose
from persistaudit.runtime.image import ImageRuntime

# config, client, run id, log -> a runtime; a driver's class is its own factory.
RuntimeFactory = Callable[[TargetConfig, DockerClient, str, Callable[[str], None]], Runtime]

DRIVERS: dict[str, RuntimeFactory] = {
    ImageRuntime.NAME: ImageRuntime,
    ComposeRuntime.NAME: ComposeRuntime,
}


def driver_name(config: TargetConfig) -> str:
    """The DRIVERS key for a config: compose for a compose service, else the image driver."""
    return ComposeRuntime.NAME if config.compose is not None else ImageRuntime.NAME


def prepare(config: TargetConfig, client: DockerClient) -> None:
    """Find what the user got wrong before any container runs: build or resolve the image, or
    check the compose file and build its services (a PersistauditError: exit 2 from the CLI)."""
    if config.compose is not None:
        prepare_compose(config, client)
    else:
        ensure_image(client, config)


def runtime_for(
    config: TargetConfig,
    client: DockerClient,
    run_id: str,
    log: Callable[[str], None] = lambda _msg: None,
) -> Runtime:
    """The runtime that audits config's target, from the driver table."""
    return DRIVERS[driver_name(config)](config, client, run_id, log)


__all__ = [
    "DRIVERS",
    "ComposeRuntime",
    "ContainerHandle",
    "DeclaredMount",
    "DockerContainer",
    "ImageRuntime",
    "Mount",
    "Runtime",
    "RuntimeFactory",
    "TargetInfo",
    "driver_name",
    "prepare",
    "runtime_for",
]

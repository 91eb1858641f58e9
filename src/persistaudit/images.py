"""Resolve the image a target runs: use a local one, pull it, or build it from a context."""

from __future__ import annotations

import json

import docker.errors
from docker import DockerClient

from persistaudit.config import TargetConfig
from persistaudit.exceptions import ImageError

_resolved: dict[tuple[str, str], str] = {}


def ensure_image(client: DockerClient, config: TargetConfig) -> str:
    """Return the id of the target's image, building or pulling it once per process."""
    key = (config.image_ref, config.build.model_dump_json() if config.build else "")
    if key not in _resolved:
        _resolved[key] = _resolve(client, config)
    return _resolved[key]


def _resolve(client: DockerClient, config: TargetConfig) -> str:
    if config.build is not None:
        return _build(client, config)
    ref = config.image_ref
    try:
        return str(client.images.get(ref).id)
    except docker.errors.ImageNotFound:
        pass
    except docker.errors.APIError as exc:
        raise ImageError(
            f"{config.source}: image: cannot inspect {ref}: {exc.explanation}"
        ) from None
    try:
        return str(client.images.pull(ref).id)
    except docker.errors.DockerException as exc:
        detail = getattr(exc, "explanation", None) or str(exc)
        raise ImageError(
            f"{config.source}: image: {ref} is not on this engine and cannot be pulled ({detail}). "
            "Hint: build or load it first (docker build / docker load), or fix the name."
        ) from None


def _build(client: DockerClient, config: TargetConfig) -> str:
    assert config.build is not None
    spec = config.build
    tail: list[str] = []
    try:
        # The low-level API streams the build log, so a failed step can be quoted.
        for chunk in client.api.build(
            path=str(spec.context),
            dockerfile=spec.dockerfile,
            buildargs=spec.args,
            tag=config.image_ref,
            rm=True,
            forcerm=True,
            decode=True,
        ):
            if "stream" in chunk:
                tail = [*tail, *chunk["stream"].splitlines()][-15:]
            if "error" in chunk:
                raise ImageError(
                    f"{config.source}: build: building {spec.context} failed: "
                    f"{chunk['error'].strip()}"
                )
    except docker.errors.DockerException as exc:
        raise ImageError(f"{config.source}: build: building {spec.context} failed: {exc}") from None
    except json.JSONDecodeError as exc:
        raise ImageError(f"{config.source}: build: unreadable build output: {exc}") from None
    try:
        return str(client.images.get(config.image_ref).id)
    except docker.errors.ImageNotFound:
        raise ImageError(
            f"{config.source}: build: the build ended without an image; last lines: "
            + " | ".join(line for line in tail if line.strip())
        ) from None

"""Resolve the image a target runs: use a local one, pull it, or build it from a context."""

from __future__ import annotations

import json
import re
from pathlib import Path

import docker.errors
from docker import DockerClient

from persistaudit import buildkit, docker_context
from persistaudit.config import TargetConfig
from persistaudit.exceptions import ImageError

BUILDKIT_API = (1, 39)  # Docker 18.09, the first engine with BuildKit

_resolved: dict[tuple[str, str], str] = {}
_BUILT = re.compile(r"Successfully built ([0-9a-f]{12,64})\b")


def ensure_image(client: DockerClient, config: TargetConfig) -> str:
    """Return the id of the target's image, building or pulling it once per process.

    A remembered id is used again only while the engine still has that image: another job
    may have removed it since (a prune), and a container created from a missing id makes
    the engine try to pull "sha256:...", which reads as a target that cannot start.
    """
    key = (config.image_ref, config.build.model_dump_json() if config.build else "")
    known = _resolved.get(key)
    if known is not None and not _exists(client, known):
        known = None
    if known is None:
        known = _resolved[key] = _resolve(client, config)
    if config.readiness.healthcheck is True:  # not an override: the image must have its own
        _require_healthcheck(client, config, known)
    return known


def _require_healthcheck(client: DockerClient, config: TargetConfig, image_id: str) -> None:
    """readiness.healthcheck on an image without a HEALTHCHECK is a config mistake (exit 2).

    Found here, before any container runs: waiting would only time out as BLOCKED, which
    reads as a target that never became ready.
    """
    try:
        check = client.images.get(image_id).attrs.get("Config", {}).get("Healthcheck") or {}
    except docker.errors.DockerException:
        return  # the engine cannot tell now; the wait names a missing healthcheck too
    test = check.get("Test") or []
    if not test or test[0] == "NONE":
        raise ImageError(
            f"{config.source}: readiness.healthcheck: image {config.image_ref} defines no "
            "HEALTHCHECK. Hint: add one to its Dockerfile, or choose http, log or command"
        )


def _exists(client: DockerClient, image_id: str) -> bool:
    try:
        client.images.get(image_id)
    except docker.errors.ImageNotFound:
        return False
    except docker.errors.APIError:
        return True  # the engine cannot tell now; starting the container will say more
    return True


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
    """Build with the engine API's legacy builder, or with BuildKit where the Dockerfile needs
    it (or build.builder says so, or the legacy builder refused it for want of BuildKit)."""
    assert config.build is not None
    spec = config.build
    why = "build.builder: buildkit" if spec.builder == "buildkit" else ""
    if spec.builder == "auto":
        why = _needs_buildkit(spec.context / spec.dockerfile)
    if spec.builder == "legacy" or not why:
        try:
            return _legacy_build(client, config)
        except ImageError as exc:
            if spec.builder == "legacy" or not buildkit.refused_by_legacy(str(exc)):
                raise
            why = "the legacy builder refused it"
    return _buildkit_build(client, config, why)


def _needs_buildkit(dockerfile: Path) -> str:
    try:
        text = dockerfile.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""  # the build says what is wrong with it
    return buildkit.needs_buildkit(text)


def _buildkit_build(client: DockerClient, config: TargetConfig, why: str) -> str:
    """Through the docker CLI, for the engine persistaudit talks to; one line when neither
    the engine nor any docker CLI here offers BuildKit."""
    assert config.build is not None
    spec = config.build
    endpoint = docker_context.resolve()
    where = f"{config.source}: build"
    needs = f"{spec.dockerfile} needs BuildKit ({why})"
    try:
        info = client.version()
    except docker.errors.DockerException:
        info = {}
    api, os_name = str(info.get("ApiVersion", "")), str(info.get("Os", ""))
    if (os_name and os_name != "linux") or (api and _older(api, BUILDKIT_API)):
        raise ImageError(
            f"{where}: {needs}, but the engine at {endpoint} (Docker "
            f"{info.get('Version', '?')}, API {api or '?'}, {os_name or '?'}) has no BuildKit. "
            "Hint: use a Linux engine from Docker 18.09 on"
        )
    builder = buildkit.find_builder(endpoint)
    if isinstance(builder, str):
        raise ImageError(
            f"{where}: {needs}, but no docker CLI here builds with BuildKit for the engine at "
            f"{endpoint}: {builder}. {buildkit.INSTALL_HINT}"
        )
    return buildkit.build(
        builder,
        context=spec.context,
        dockerfile=spec.dockerfile,
        args=spec.args,
        tag=config.image_ref,
        where=where,
    )


def _older(version: str, than: tuple[int, int]) -> bool:
    parts = version.split(".")
    try:
        return (int(parts[0]), int(parts[1])) < than
    except (IndexError, ValueError):
        return False


def _legacy_build(client: DockerClient, config: TargetConfig) -> str:
    """Build the image with the legacy builder and return the id the build reported.

    Never the tag's id looked up afterwards: another build of the same tag (a config with the
    same name, audited at the same time) may have moved the tag in between.
    """
    assert config.build is not None
    spec = config.build
    tail: list[str] = []
    image_id = ""
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
                built = _BUILT.match(chunk["stream"])
                if built and not image_id:
                    image_id = built.group(1)  # short id: engines without the aux message
            aux = chunk.get("aux")
            if isinstance(aux, dict) and aux.get("ID"):
                image_id = str(aux["ID"])
            if "error" in chunk:
                raise ImageError(
                    f"{config.source}: build: building {spec.context} failed: "
                    f"{chunk['error'].strip()}"
                )
    except docker.errors.DockerException as exc:
        raise ImageError(f"{config.source}: build: building {spec.context} failed: {exc}") from None
    except json.JSONDecodeError as exc:
        raise ImageError(f"{config.source}: build: unreadable build output: {exc}") from None
    if image_id and not image_id.startswith("sha256:"):
        try:  # a short id is unique to this build; expand it to the full one for the report
            image_id = str(client.images.get(image_id).id)
        except docker.errors.DockerException:
            image_id = ""
    if not image_id:
        raise ImageError(
            f"{config.source}: build: the build ended without reporting an image; last lines: "
            + " | ".join(line for line in tail if line.strip())
        )
    return image_id

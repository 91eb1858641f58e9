"""Which Docker engine to talk to, chosen as the docker CLI chooses it.

The docker SDK's from_env reads DOCKER_HOST only: a user who ran `docker context use remote`
(or set DOCKER_CONTEXT) would have the CLI, compose and a BuildKit build talk to one engine
and persistaudit to another. The CLI's order: DOCKER_HOST, then DOCKER_CONTEXT, then
currentContext in the config file ($DOCKER_CONFIG/config.json, ~/.docker/config.json),
then the default context (the local socket). A context's endpoint is in
contexts/meta/<sha256 of its name>/meta.json, its TLS files in contexts/tls/<sha256>/docker/.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from persistaudit.exceptions import EngineUnavailable

DEFAULT_HOST = "unix:///var/run/docker.sock"
DEFAULT_CONTEXT = "default"
TLS_FILES = ("ca.pem", "cert.pem", "key.pem")


@dataclass(frozen=True)
class Endpoint:
    """The engine's address and where that choice came from (for messages that name it)."""

    host: str
    context: str  # the Docker context's name; "default" for DOCKER_HOST or the local socket
    chosen_by: str  # "DOCKER_HOST", "DOCKER_CONTEXT", "currentContext in PATH" or "default"
    tls_dir: Path | None = None  # the context's ca.pem, cert.pem and key.pem, when it has any
    skip_tls_verify: bool = False

    @property
    def from_context(self) -> bool:
        """Whether a named context (not DOCKER_HOST nor the default) gave the address."""
        return self.context != DEFAULT_CONTEXT

    def __str__(self) -> str:
        if self.chosen_by == "DOCKER_HOST":
            return f"{self.host} (DOCKER_HOST)"
        if self.from_context:
            return f"{self.host} (context {self.context}, from {self.chosen_by})"
        return f"{self.host} (context {DEFAULT_CONTEXT})"


def config_dir(environ: Mapping[str, str]) -> Path:
    """The docker CLI's config folder: $DOCKER_CONFIG, or ~/.docker."""
    return Path(environ.get("DOCKER_CONFIG") or Path.home() / ".docker")


def context_id(name: str) -> str:
    """The folder name the docker CLI stores a context under."""
    return hashlib.sha256(name.encode()).hexdigest()


def _current_context(folder: Path) -> str:
    """currentContext in config.json; "" when the file is missing or unreadable.

    The docker CLI only warns about a config file it cannot parse and goes on with the
    default context, so this does the same.
    """
    try:
        doc = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return ""
    name = doc.get("currentContext") if isinstance(doc, dict) else None
    return name if isinstance(name, str) else ""


def resolve(environ: Mapping[str, str] | None = None) -> Endpoint:
    """The engine the docker CLI would use in this environment.

    A context that is named but not stored, or whose meta.json has no docker endpoint, is
    EngineUnavailable (exit 2): falling back to another engine would audit the wrong one.
    """
    env = os.environ if environ is None else environ
    host = env.get("DOCKER_HOST", "")
    if host:
        return Endpoint(host, DEFAULT_CONTEXT, "DOCKER_HOST")
    folder = config_dir(env)
    name, chosen_by = env.get("DOCKER_CONTEXT", ""), "DOCKER_CONTEXT"
    if not name:
        name, chosen_by = _current_context(folder), f"currentContext in {folder / 'config.json'}"
    if not name or name == DEFAULT_CONTEXT:
        return Endpoint(DEFAULT_HOST, DEFAULT_CONTEXT, "default")
    return _stored(folder, name, chosen_by)


def _stored(folder: Path, name: str, chosen_by: str) -> Endpoint:
    meta = folder / "contexts" / "meta" / context_id(name) / "meta.json"
    hint = (
        "Hint: `docker context ls` lists the contexts; "
        "`docker context use default` is the local engine"
    )
    try:
        doc: Any = json.loads(meta.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise EngineUnavailable(
            f"Docker context {name!r} ({chosen_by}) does not exist: no {meta}. {hint}"
        ) from None
    except (OSError, ValueError) as exc:
        raise EngineUnavailable(f"Docker context {name!r}: cannot read {meta}: {exc}") from None
    endpoints = doc.get("Endpoints") if isinstance(doc, dict) else None
    found = endpoints.get("docker") if isinstance(endpoints, dict) else None
    docker: dict[str, Any] = found if isinstance(found, dict) else {}
    host = docker.get("Host")
    if not isinstance(host, str) or not host:
        raise EngineUnavailable(
            f"Docker context {name!r} ({chosen_by}) has no docker endpoint in {meta}. {hint}"
        )
    tls = folder / "contexts" / "tls" / context_id(name) / "docker"
    has_tls = any((tls / f).is_file() for f in TLS_FILES)
    return Endpoint(
        host,
        name,
        chosen_by,
        tls_dir=tls if has_tls else None,
        skip_tls_verify=bool(docker.get("SkipTLSVerify", False)),
    )

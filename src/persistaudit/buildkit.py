"""Builds that need BuildKit, through the docker CLI: `docker buildx build`, or a docker CLI
with BuildKit built in (before version 23) and DOCKER_BUILDKIT=1.

The engine API's build endpoint that the docker SDK uses is the legacy builder: it refuses
`RUN --mount`, `COPY --chmod`, heredocs and the like. BuildKit over the API needs a gRPC
session the SDK does not speak, so those builds go through the CLI the user would use.
The CLI is pointed at the engine persistaudit talks to (the Docker context, or DOCKER_HOST
as it is in the environment), and reports the image id in an --iidfile: never the tag's id
looked up afterwards, which another build of the same tag may have moved.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from persistaudit.docker_context import Endpoint
from persistaudit.exceptions import ImageError

BUILD_TIMEOUT_S = 900.0
PROBE_TIMEOUT_S = 20.0
OUTPUT_TAIL = 15  # lines of the build's output quoted when it fails
# The first docker CLI whose builder has no BuildKit of its own (it needs buildx).
CLI_WITHOUT_BUILTIN = 23
INSTALL_HINT = (
    "Hint: install the docker buildx plugin (Debian/Ubuntu: docker-buildx, or Docker's "
    "docker-buildx-plugin), or set build.builder: legacy for a Dockerfile that does without"
)

# Instructions only BuildKit understands: flags of RUN, COPY and ADD, heredocs, and a syntax
# directive (which names a frontend image BuildKit fetches).
_FEATURES = (
    (re.compile(r"^\s*RUN\s+(?:--\S+\s+)*--(mount|network|security)\b", re.I), "RUN --{}"),
    (
        re.compile(
            r"^\s*(?:COPY|ADD)\s+(?:--\S+\s+)*--(chmod|link|parents|exclude|checksum|keep-git-dir)\b",
            re.I,
        ),
        "COPY/ADD --{}",
    ),
    (re.compile(r"^\s*(?:RUN|COPY)\s.*<<-?\s*[\"']?[A-Za-z_]\w*", re.I), "a heredoc"),
)
_SYNTAX = re.compile(r"^#\s*syntax\s*=", re.I)


def needs_buildkit(dockerfile: str) -> str:
    """What in the Dockerfile needs BuildKit ("RUN --mount at line 5"), or "" when nothing."""
    for number, line in enumerate(dockerfile.splitlines(), 1):
        if number == 1 and _SYNTAX.match(line):
            return "a # syntax= directive at line 1"
        for pattern, what in _FEATURES:
            found = pattern.match(line)
            if found:
                name = what.format(*found.groups()) if found.groups() else what
                return f"{name} at line {number}"
    return ""


def refused_by_legacy(message: str) -> bool:
    """Whether a legacy build failed for want of BuildKit ("the --mount option requires
    BuildKit"): such a build is tried again with BuildKit."""
    return "requires buildkit" in message.lower()


@dataclass(frozen=True)
class Builder:
    """A docker CLI command that builds with BuildKit, and what to call it in messages."""

    command: tuple[str, ...]  # up to and including `build`
    env: dict[str, str] = field(default_factory=dict)  # added to the environment
    name: str = ""


def _run(argv: list[str]) -> subprocess.CompletedProcess[str] | None:
    try:
        return subprocess.run(
            argv, capture_output=True, text=True, timeout=PROBE_TIMEOUT_S, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None


def docker_clis(path: str | None = None) -> list[str]:
    """Every docker executable on PATH, in PATH order (a machine may have two: a distribution's
    older CLI with BuildKit built in, and a newer one without buildx)."""
    found: list[str] = []
    seen: set[str] = set()
    for folder in (path if path is not None else os.environ.get("PATH", "")).split(os.pathsep):
        candidate = shutil.which("docker", path=folder) if folder else None
        if candidate and os.path.realpath(candidate) not in seen:
            seen.add(os.path.realpath(candidate))
            found.append(candidate)
    return found


def _client_major(cli: str) -> int | None:
    done = _run([cli, "version", "--format", "{{.Client.Version}}"])
    if done is None:
        return None
    major = done.stdout.strip().split(".")[0]
    return int(major) if major.isdigit() else None


def find_builder(endpoint: Endpoint, path: str | None = None) -> Builder | str:
    """The first docker CLI on PATH that builds with BuildKit for this engine, or why none.

    `docker buildx` first (its default builder is the engine's own BuildKit, and --load puts
    the image in the engine in any case); else a CLI before 23 with DOCKER_BUILDKIT=1.
    """
    context = ["--context", endpoint.context] if endpoint.from_context else []
    found: list[str] = []
    for cli in docker_clis(path):
        buildx = _run([cli, *context, "buildx", "version"])
        if buildx is not None and buildx.returncode == 0:
            return Builder((cli, *context, "buildx", "build", "--load"), {}, f"{cli} buildx")
        major = _client_major(cli)
        if major is not None and major < CLI_WITHOUT_BUILTIN:
            return Builder(
                (cli, *context, "build"), {"DOCKER_BUILDKIT": "1"}, f"{cli} with BuildKit"
            )
        found.append(f"{cli} (client {major if major is not None else '?'}) has no buildx plugin")
    if not found:
        return "no docker CLI on PATH"
    return "; ".join(found)


def build(
    builder: Builder,
    *,
    context: Path,
    dockerfile: str,
    args: dict[str, str],
    tag: str,
    where: str,
) -> str:
    """Build with BuildKit and return the image id the build wrote; ImageError quoting the
    build's last lines when it fails. where: the config and key, for messages."""
    with tempfile.TemporaryDirectory(prefix="persistaudit-build-") as scratch:
        iidfile = Path(scratch) / "iid"
        argv = [
            *builder.command,
            "--progress=plain",
            "--iidfile",
            str(iidfile),
            "--file",
            str(context / dockerfile),
            "--tag",
            tag,
        ]
        for key, value in args.items():
            argv += ["--build-arg", f"{key}={value}"]
        argv.append(str(context))
        try:
            done = subprocess.run(
                argv,
                capture_output=True,
                text=True,
                timeout=BUILD_TIMEOUT_S,
                env={**os.environ, **builder.env},
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise ImageError(
                f"{where}: building {context} with {builder.name} did not end within "
                f"{BUILD_TIMEOUT_S:g} s"
            ) from None
        except OSError as exc:
            raise ImageError(f"{where}: {builder.name} could not run: {exc}") from None
        if done.returncode != 0:
            raise ImageError(
                f"{where}: building {context} with {builder.name} failed "
                f"(exit {done.returncode}): {_tail(done.stderr + done.stdout)}"
            )
        image_id = iidfile.read_text().strip() if iidfile.is_file() else ""
    if not image_id.startswith("sha256:"):
        raise ImageError(
            f"{where}: {builder.name} ended without reporting an image id; last lines: "
            f"{_tail(done.stderr + done.stdout)}"
        )
    return image_id


def _tail(output: str) -> str:
    """The build's error lines (BuildKit's plain progress ends with them), else its last."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    errors = [line for line in lines if "error" in line.lower()]
    return " | ".join(errors[-3:] or lines[-OUTPUT_TAIL:]) or "(no output)"

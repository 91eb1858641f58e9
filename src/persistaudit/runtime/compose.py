"""The compose driver: one service of a compose file, in a project of the run's own.

testcontainers' DockerCompose composes the commands and reads `compose ps`; its start and
stop are never used, because its teardown (`down --volumes`) would remove what is audited.
Here restart is `compose restart SERVICE`, re-create is `compose down` (volumes kept) then
`up`, and close() removes what the run created by its labels, as the image driver does.
Every compose command has a timeout, and what compose said goes into the evidence.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker.errors
from docker import DockerClient
from testcontainers.compose import DockerCompose

from persistaudit import activity, cleanup, engine, signals
from persistaudit.config import ComposeSpec, HealthcheckSpec, TargetConfig
from persistaudit.exceptions import (
    ComposeError,
    ConfigError,
    ImageError,
    TargetBlocked,
    TargetRemoved,
)
from persistaudit.hostfs import host_fs_type, is_network
from persistaudit.readiness import strategy_for
from persistaudit.runtime.base import (
    STOP_TIMEOUT,
    DeclaredMount,
    DockerContainer,
    EngineRuntime,
    TargetInfo,
)
from persistaudit.runtime.compose_model import Rewritten, has_healthcheck, image_tag, rewrite
from persistaudit.runtime.compose_restore import restore_compose
from persistaudit.runtime.compose_upgrade import ComposeUpgrade
from persistaudit.runtime.image import published_ports
from persistaudit.runtime.restore import FileOwner, Restored

STDERR_TAIL = 15  # lines of compose's stderr kept as evidence
# Seconds each compose command may take, at most.
TIMEOUTS = {"config": 60.0, "build": 900.0, "up": 180.0, "restart": 90.0, "down": 120.0}
DEFAULT_TIMEOUT = 60.0
# Set by a user's shell, these would change which project, files or profiles compose uses.
_COMPOSE_ENV = ("COMPOSE_PROJECT_NAME", "COMPOSE_FILE", "COMPOSE_PROFILES", "COMPOSE_ENV_FILES")


def _answers_as_v2(command: list[str]) -> bool:
    try:
        done = subprocess.run(
            [*command, "version", "--short"], capture_output=True, text=True, timeout=20
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    major = done.stdout.strip().removeprefix("v").split(".")[0]
    return done.returncode == 0 and major.isdigit() and int(major) >= 2


@functools.cache
def compose_command() -> tuple[str, ...]:
    """`docker compose`, or set-up's .venv/bin/docker-compose, whichever answers as v2."""
    candidates = [["docker", "compose"], [str(Path(sys.executable).with_name("docker-compose"))]]
    found = shutil.which("docker-compose")
    if found:
        candidates.append([found])
    for command in candidates:
        if _answers_as_v2(command):
            return tuple(command)
    raise ComposeError(
        "Compose v2 is not installed: neither `docker compose` nor docker-compose answers as "
        "v2. Hint: install Compose v2 (Debian/Ubuntu: docker-compose-plugin or docker-compose-v2; "
        "in a persistaudit checkout, `scripts/setup.sh compose` installs it)"
    )


def _tail(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return "\n".join(lines[-STDERR_TAIL:])


class Compose(DockerCompose):
    """testcontainers' DockerCompose with a project name, a timeout on every command and
    errors that quote compose; its start()/stop() are not used (stop removes volumes)."""

    def __init__(
        self, files: list[Path], project: str, env_files: list[Path], profiles: list[str]
    ) -> None:
        super().__init__(
            context=str(files[0].parent),
            compose_file_name=[str(f) for f in files],
            env_file=[str(f) for f in env_files] or None,
            profiles=profiles or None,
            wait=False,
        )
        self.project = project

    @functools.cached_property
    def compose_command_property(self) -> list[str]:
        command = [*compose_command(), "--project-name", self.project]
        for file in self.compose_file_name or []:
            command += ["--file", file]
        for profile in self.profiles or []:
            command += ["--profile", profile]
        for env_file in self.env_file or []:
            command += ["--env-file", env_file]
        return command

    def _run_command(  # testcontainers' hook: every command it and this driver run
        self, cmd: str | list[str], context: str | None = None, timeout: float | None = None
    ) -> subprocess.CompletedProcess[bytes]:
        assert isinstance(cmd, list)  # never a shell string
        args = cmd[len(self.compose_command_property) :]
        verb = next((a for a in args if not a.startswith("-")), "?")
        limit = timeout or TIMEOUTS.get(verb, DEFAULT_TIMEOUT)
        env = {k: v for k, v in os.environ.items() if k not in _COMPOSE_ENV}
        try:
            done = subprocess.run(
                cmd,
                capture_output=True,
                cwd=context or str(self.context),
                timeout=limit,
                env=env,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            stderr = exc.stderr.decode("utf-8", "replace") if exc.stderr else ""
            raise ComposeError(
                f"docker compose {verb} did not end within {limit:g} s (project {self.project})",
                stderr=_tail(stderr),
            ) from None
        except OSError as exc:
            raise ComposeError(f"docker compose {verb} could not run: {exc}") from None
        if done.returncode != 0:
            stderr = _tail(done.stderr.decode("utf-8", "replace"))
            last = stderr.splitlines()[-1] if stderr else "(nothing on stderr)"
            raise ComposeError(
                f"docker compose {verb} failed (exit {done.returncode}): {last}", stderr=stderr
            )
        return done

    def run(self, *args: str, timeout: float | None = None) -> str:
        """Run `compose ARGS` on this project; its stdout."""
        done = self._run_command([*self.compose_command_property, *args], timeout=timeout)
        return done.stdout.decode("utf-8", "replace")


def _spec(config: TargetConfig) -> ComposeSpec:
    if config.compose is None:
        raise ValueError(f"{config.name} is not a compose target")
    return config.compose


def resolve_model(config: TargetConfig, project: str) -> dict[str, Any]:
    """The compose model as compose resolves it (env files, profiles, paths); exit 2 if invalid.

    ConfigError names the compose file and the service when the file is invalid or the
    service is not in it.
    """
    spec = _spec(config)
    compose = Compose([spec.file], project, spec.env_files, spec.profiles)
    try:
        model = json.loads(compose.run("config", "--format", "json"))
    except ComposeError as exc:
        detail = exc.stderr.splitlines()[-1] if exc.stderr else str(exc)
        raise ConfigError(f"{spec.file}: invalid compose file: {detail}") from None
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{spec.file}: compose config gave unreadable JSON: {exc}") from None
    services = model.get("services") or {}
    if spec.service not in services:
        known = ", ".join(sorted(services)) or "none"
        raise ConfigError(
            f"{config.source}: compose.service: no service {spec.service!r} in {spec.file} "
            f"with profiles {spec.profiles or 'none'} (its services: {known})"
        )
    return dict(model)


_built: dict[tuple[str, str], str] = {}  # (tag, build section) -> image id, once per process


def build_images(
    config: TargetConfig, client: DockerClient, model: dict[str, Any]
) -> dict[str, str]:
    """Build the services that have a build section, with compose; service -> image id.

    Tagged persistaudit/TARGET-SERVICE:audit (never the author's image name, which may be an
    image of theirs); built once per process while the engine still has the image.
    """
    spec = _spec(config)
    wanted = {
        name: (image_tag(config.name, name), service["build"])
        for name, service in (model.get("services") or {}).items()
        if isinstance(service, dict) and service.get("build")
    }
    out: dict[str, str] = {}
    todo = {}
    for name, (tag, build) in wanted.items():
        known = _built.get((tag, json.dumps(build, sort_keys=True)))
        if known and _image_exists(client, known):
            out[name] = known
        else:
            todo[name] = (tag, build)
    if not todo:
        return out
    with tempfile.TemporaryDirectory(prefix="persistaudit-build-") as folder:
        file = Path(folder) / "build.json"
        services = {n: {"build": b, "image": t} for n, (t, b) in todo.items()}
        file.write_text(json.dumps({"name": "persistaudit-build", "services": services}))
        compose = Compose([file], "persistaudit-build", [], [])
        try:
            compose.run("build", *todo)
        except ComposeError as exc:
            raise ImageError(
                f"{spec.file}: build of {', '.join(todo)} failed: {exc} (last lines: "
                + " | ".join(exc.stderr.splitlines()[-5:])
                + ")"
            ) from None
    for name, (tag, build) in todo.items():
        try:
            image_id = str(client.images.get(tag).id)
        except docker.errors.DockerException as exc:
            raise ImageError(
                f"{spec.file}: built {tag} for {name}, but it is gone: {exc}"
            ) from None
        _built[tag, json.dumps(build, sort_keys=True)] = out[name] = image_id
    return out


def _image_exists(client: DockerClient, ref: str) -> bool:
    try:
        client.images.get(ref)
    except docker.errors.ImageNotFound:
        return False
    except docker.errors.APIError:
        return True  # cannot tell now: compose will say
    return True


def _image_healthcheck(client: DockerClient, ref: str) -> bool:
    try:
        check = client.images.get(ref).attrs.get("Config", {}).get("Healthcheck") or {}
    except docker.errors.DockerException:
        return True  # cannot tell now; the wait names a missing healthcheck too
    test = check.get("Test") or []
    return bool(test) and test[0] != "NONE"


@dataclass
class Prepared:
    model: dict[str, Any]
    built: dict[str, str]  # service -> image id
    local_images: set[str]  # image references of image-only services that the engine has


def prepare(
    config: TargetConfig, client: DockerClient, project: str = "persistaudit-check"
) -> Prepared:
    """Everything a user can get wrong, found before any container runs (exit 2 from the CLI):
    the compose file, the service, the builds and a healthcheck readiness asks for."""
    spec = _spec(config)
    model = resolve_model(config, project)
    built = build_images(config, client, model)
    local = {
        str(s["image"])
        for name, s in (model.get("services") or {}).items()
        if name not in built
        and isinstance(s, dict)
        and s.get("image")
        and _image_exists(client, str(s["image"]))
    }
    if config.readiness.healthcheck is True:
        service = model["services"][spec.service]
        declared = has_healthcheck(service)
        image = built.get(spec.service) or str(service.get("image", ""))
        if declared is False or (declared is None and not _image_healthcheck(client, image)):
            raise ConfigError(
                f"{config.source}: readiness.healthcheck: service {spec.service} of {spec.file} "
                "has no healthcheck (neither in the compose file nor in its image). Hint: add "
                "one there, give one here (readiness: {healthcheck: {test: [CMD, ...]}}), or "
                "choose http, log or command"
            )
    return Prepared(model, built, local)


def _blocked(what: str, reason: str, exc: ComposeError) -> TargetBlocked:
    """BLOCKED by a compose command that failed: what it was, and compose's stderr as evidence."""
    return TargetBlocked(
        f"{what}: {exc}",
        reason=reason,
        evidence={
            "reason": reason,
            "engine_error": exc.stderr or str(exc),
            "logs": exc.stderr.splitlines(),
        },
    )


class ComposeRuntime(EngineRuntime):
    """One service of a compose file, run in a project of this run's own (see module doc)."""

    NAME = "compose"

    def __init__(
        self,
        config: TargetConfig,
        client: DockerClient,
        run_id: str,
        log: Callable[[str], None] = lambda _msg: None,
    ) -> None:
        self.config = config
        self.spec = _spec(config)
        self.client = client
        self.run_id = run_id
        self.log = log
        self.labels = engine.labels(run_id, config.name)
        self.prefix = engine.run_prefix(config.name, run_id)
        stem = (self.spec.project_name or config.name).replace(".", "-")
        self.project = engine.run_prefix(stem, run_id)
        self.local = engine.is_local()
        self.scratch: Path | None = None
        self.prepared: Prepared | None = None
        self.rewritten: Rewritten | None = None
        self.image_id = ""
        self._container: DockerContainer | None = None
        self._compose: Compose | None = None
        self.strategy = strategy_for(config.readiness)

    @property
    def container(self) -> DockerContainer:
        if self._container is None:
            raise RuntimeError("the target has not been started")
        return self._container

    @property
    def compose(self) -> Compose:
        if self._compose is None:
            raise RuntimeError("the target has not been started")
        return self._compose

    @property
    def model_file(self) -> Path:
        if self.scratch is None:
            raise RuntimeError("the target has not been started")
        return self.scratch / "compose.json"

    def start(self) -> float:
        self.log(f"resolving {self.spec.file} (service {self.spec.service}) with compose")
        prepared = prepare(self.config, self.client, self.project)
        with signals.shielded(resume=True):  # named by the run: `clean` finds it if killed
            self.scratch = Path(tempfile.mkdtemp(prefix=f"{self.prefix}-compose-"))
        self.prepared = prepared
        self.rewritten = self._rewrite(self.project, self.scratch)
        for note in self.rewritten.notes:
            self.log(note)
        self.model_file.write_text(json.dumps(self.rewritten.model, indent=1))
        self._compose = Compose([self.model_file], self.project, [], [])
        self.log(
            f"project {self.project}: fresh volumes {', '.join(self.rewritten.volumes) or '(none)'}"
        )
        return self._up()

    def _rewrite(self, project: str, scratch: Path) -> Rewritten:
        """The prepared model as project runs it (the run's labels, ephemeral ports)."""
        if self.prepared is None:
            raise RuntimeError("the target has not been started")
        healthcheck = self.config.readiness.healthcheck
        return rewrite(
            self.prepared.model,
            service=self.spec.service,
            project=project,
            labels=self.labels,
            scratch=scratch,
            bind_mounts=self.spec.bind_mounts,
            env=self.config.env,
            ports=published_ports(self.config),
            healthcheck=healthcheck if isinstance(healthcheck, HealthcheckSpec) else None,
            built=self.prepared.built,
            local_images=self.prepared.local_images,
            loopback=self.local,
            fs_type=host_fs_type if self.local else (lambda _path: ""),
        )

    def _up(self) -> float:
        try:
            # Not cut off mid-way: what compose goes on creating after an interrupt would be
            # left behind. Shielded, the interrupt lands once compose is done.
            with signals.shielded(resume=True):
                self.compose.run("up", "--detach", "--no-build")
        except ComposeError as exc:
            raise _blocked(
                f"compose project {self.project} could not start", "start-failed", exc
            ) from None
        self._container = self._find()
        self.image_id = str(self.container.attrs.get("Image", ""))
        return self._wait(restarts_before=0)

    def _find(self, compose: Compose | None = None) -> DockerContainer:
        """The audited service's container in the run's project (or compose's)."""
        compose = compose or self.compose
        try:
            found = compose.get_container(self.spec.service, include_all=True)
            raw = self.client.containers.get(str(found.ID))
        except (ComposeError, docker.errors.NotFound) as exc:
            raise TargetRemoved(
                f"the container of service {self.spec.service} (project {compose.project}) is "
                f"gone: {exc}"
            ) from None
        except Exception as exc:  # testcontainers' ContainerIsNotRunning: compose made none
            raise TargetBlocked(
                f"compose started no container for service {self.spec.service}: {exc}",
                reason="start-failed",
                evidence={"reason": "start-failed", "engine_error": str(exc)},
            ) from None
        return DockerContainer(raw, "127.0.0.1" if self.local else _engine_host())

    def restart(self) -> float:
        before = self.container.state().restart_count
        self.log(f"docker compose -p {self.project} restart {self.spec.service}")
        with activity.during("waiting", f"restart: {self.spec.service}"):
            self._cycle_step("restart", "--timeout", str(STOP_TIMEOUT), self.spec.service)
        return self._wait(restarts_before=before)

    def recreate(self) -> float:
        self.log(f"docker compose -p {self.project} down (volumes kept), then up")
        anonymous = self._anonymous_volumes()
        with signals.shielded(resume=True):
            with activity.during("waiting", f"stop: compose down {self.project}"):
                self._cycle_step("down", "--timeout", str(STOP_TIMEOUT))
            self._container = None
            # down keeps a container's anonymous volumes, unlabelled: the next up makes new
            # ones, so these would be left behind.
            for name in anonymous:
                with contextlib.suppress(docker.errors.DockerException):
                    self.client.api.remove_volume(name, force=True)
        gone = self._volumes_gone()
        if gone:
            raise TargetRemoved(f"{' and '.join(gone)} removed by something else")
        return self._up()

    def _cycle_step(self, *args: str) -> None:
        try:
            self.compose.run(*args)
        except ComposeError as exc:
            raise _blocked(
                f"compose {args[0]} of project {self.project} failed", "compose-failed", exc
            ) from None

    def _anonymous_volumes(self) -> list[str]:
        names = []
        filters: dict[str, str | list[str] | bool] = {
            "label": f"com.docker.compose.project={self.project}"
        }
        with contextlib.suppress(docker.errors.DockerException):
            for raw in self.client.containers.list(all=True, filters=filters):
                for mount in DockerContainer(raw).mounts():
                    if mount.anonymous and mount.name:
                        names.append(mount.name)
        return names

    def _volumes_gone(self) -> list[str]:
        gone = []
        for name in self.rewritten.volumes if self.rewritten else []:
            try:
                labels = self.client.volumes.get(name).attrs.get("Labels") or {}
            except docker.errors.NotFound:
                gone.append(f"volume {name}")
                continue
            except engine.ENGINE_CALL_ERRORS:
                continue  # cannot tell: no evidence of a removal
            if labels.get(engine.LABEL_RUN) != self.run_id:
                gone.append(f"volume {name}")
        return gone

    def restore(
        self,
        files: dict[str, Path],
        scratch: Path,
        owners: Mapping[str, FileOwner] | None = None,
    ) -> Restored:
        """The same model in a project of its own (PROJECT-restore: the run's labels, fresh
        volumes, ephemeral ports), files put into the audited service's created container."""
        project, folder, rewritten = self._side_project("restore")
        self.log(f"restore: project {project}, fresh volumes seeded with a backup")
        model_file = folder / "compose.json"
        model_file.write_text(json.dumps(rewritten.model, indent=1))
        compose = Compose([model_file], project, [], [])
        return restore_compose(
            compose,
            self.client,
            lambda: self._find(compose),
            ", ".join(rewritten.volumes),
            files,
            scratch,
            owners,
            self.config,
        )

    def _side_project(self, role: str) -> tuple[str, Path, Rewritten]:
        """A project of the run's own beside the audited one (PROJECT-ROLE): its name, its
        folder (fresh bind folders, apart from the run's) and the model rewritten for it."""
        if self.scratch is None:
            raise RuntimeError("the target has not been started")
        project = f"{self.project}-{role}"
        folder = self.scratch / role
        folder.mkdir(exist_ok=True)
        return project, folder, self._rewrite(project, folder)

    def upgrade(self) -> ComposeUpgrade:
        """The same model in a project of its own (PROJECT-upgrade: the run's labels, fresh
        volumes and bind folders, ephemeral ports): the audited service on the previous
        version's image (upgrade_from), later on this run's image id. Nothing is started yet."""
        project, folder, rewritten = self._side_project("upgrade")
        self.log(f"upgrade: project {project}, the previous version of {self.spec.service} first")
        compose = Compose([folder / "compose.json"], project, [], [])
        return ComposeUpgrade(
            self.client,
            self.config,
            rewritten,
            compose,
            lambda: self._find(compose),
            self.spec.service,
            self.image_id,
            folder,
        )

    def missing(self) -> list[str]:
        gone = self._container_gone()
        if self._compose is not None:
            gone += self._volumes_gone()
        return gone

    def declared_mounts(self) -> list[DeclaredMount]:
        """The model's mounts of the service; a named volume whose engine options say NFS or
        CIFS (`docker volume inspect`) is flagged as the model's driver_opts would be."""
        if self.rewritten is None:
            return []
        out = []
        for mount in self.rewritten.declared:
            if mount.type == "volume" and not mount.network_fs:
                name = f"{self.project}_{mount.source}"
                with contextlib.suppress(docker.errors.DockerException):
                    options = self.client.volumes.get(name).attrs.get("Options") or {}
                    fs_type = str(options.get("type", ""))
                    if is_network(fs_type):
                        mount = DeclaredMount(
                            mount.type,
                            mount.source,
                            mount.target,
                            mount.read_only,
                            f"volume {name} has the engine option type={fs_type}",
                        )
            out.append(mount)
        return out

    def describe(self) -> TargetInfo:
        service: dict[str, Any] = {}
        if self.rewritten is not None:
            service = self.rewritten.model["services"][self.spec.service]
        digests: list[str] = []
        if self.image_id:
            with contextlib.suppress(docker.errors.DockerException):
                digests = list(self.client.images.get(self.image_id).attrs.get("RepoDigests") or [])
        declared = self.rewritten.declared if self.rewritten else []
        volumes = [f"{self.project}_{m.source}" for m in declared if m.type == "volume"]
        image = str(service.get("image", ""))
        if image.startswith("sha256:"):
            image = image_tag(self.config.name, self.spec.service)
        return TargetInfo(
            name=self.config.name,
            driver=self.NAME,
            image=image or self.config.image_ref,
            image_id=self.image_id,
            repo_digests=digests,
            volume=", ".join(volumes),
            mount=", ".join(m.target for m in declared),
            databases=[d.path for d in self.config.declared_databases],
            restart_policy=str(service.get("restart", "no") or "no"),
            compose_file=str(self.spec.file),
            project=self.project,
            service=self.spec.service,
        )

    def step_command(self, step: str) -> str:
        model = self.model_file if self.scratch else "compose.json"
        base = f"docker compose -p {self.project} -f {model}"
        if step == "start":
            return (
                f"docker compose -f {self.spec.file} config --format json  # rewritten: {model}\n"
                f"{base} up --detach --no-build"
            )
        if step == "restart":
            return f"{base} restart {self.spec.service}"
        return f"{base} down  # volumes kept\n{base} up --detach --no-build"

    def close(self) -> cleanup.Removal:
        self._container = None
        removal = cleanup.remove_run(self.run_id, self.project)
        if self.scratch is not None:
            shutil.rmtree(self.scratch, ignore_errors=True)
            if self.scratch.exists():
                removal.left[f"folder {self.scratch}"] = "files in it could not be removed"
            else:
                removal.removed.append(f"folder {self.scratch}")
        return removal


def _engine_host() -> str:
    """The host of a remote engine (DOCKER_HOST or the context's), where its ports are."""
    return engine.published_host()

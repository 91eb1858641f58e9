"""The target config: what to start, where its database lives, and what to expect of it.

Loaded from YAML and validated with pydantic; every error names the file, the line and
the field, because auditors edit these files by hand.
"""

from __future__ import annotations

import os
import re
from datetime import date
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    model_validator,
)

from persistaudit import catalog, jsonpath
from persistaudit.display import format_size as format_size  # re-exported: it lived here
from persistaudit.exceptions import ConfigError, clip_value
from persistaudit.yamlio import MAX_ALIAS_NODES as MAX_ALIAS_NODES  # re-exported, likewise
from persistaudit.yamlio import field_message
from persistaudit.yamlio import read_yaml as read_yaml
from persistaudit.yamlio import validation_message as _validation_message

CANARY_VARS = ("i", "marker", "run")
# HTTP steps only: a number unique to each session the canary opens (a writer of the crash
# load has its own), for services that keep one CSRF token per client id (Prefect).
SESSION_VAR = "session"
_PLACEHOLDER = re.compile(r"\{(\w+)\}")
CAPTURE_PLACEHOLDER = re.compile(r"\{capture\.(\w+)\}")
_ENV_REF = re.compile(r"\$\{(\w+)(?::-([^}]*))?\}")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BuildSpec(_Model):
    """Build the target image from a local context (relative to the config file)."""

    context: Path
    dockerfile: str = "Dockerfile"
    args: dict[str, str] = Field(default_factory=dict)
    tag: str | None = None
    # auto: the engine API's legacy builder, or BuildKit (through the docker CLI) for a
    # Dockerfile that needs it (RUN --mount, COPY --chmod, heredocs, # syntax=).
    builder: Literal["auto", "buildkit", "legacy"] = "auto"


class HttpReady(_Model):
    path: str = "/"
    port: int
    status: int = 200


class HealthcheckSpec(_Model):
    """A healthcheck persistaudit gives the container, replacing the image's (or service's) own.

    Times are seconds; the engine runs test in the container every interval.
    """

    test: list[str] = Field(min_length=2)
    interval: float = Field(default=1.0, gt=0)
    timeout: float = Field(default=5.0, gt=0)
    retries: int = Field(default=3, ge=1)
    start_period: float = Field(default=0.0, ge=0)

    @model_validator(mode="after")
    def _engine_form(self) -> HealthcheckSpec:
        if self.test[0] not in ("CMD", "CMD-SHELL"):
            raise ValueError(
                "test starts with CMD (then the command and its arguments) or CMD-SHELL (then "
                'one shell command line), as in a compose file: [CMD, curl, -f, "http://..."]'
            )
        return self


def _healthcheck_kind(value: Any) -> str:
    return "branch-given" if isinstance(value, dict | HealthcheckSpec) else "branch-own"


# `true` (the image's or service's own) or a mapping (persistaudit's), told apart by shape, so
# that an error in the mapping names its field. "branch-" parts are dropped from error locations.
OwnOrGivenHealthcheck = Annotated[
    Annotated[Literal[True], Tag("branch-own")] | Annotated[HealthcheckSpec, Tag("branch-given")],
    Discriminator(_healthcheck_kind),
]


class ReadinessSpec(_Model):
    """How to tell the target is ready: exactly one of http, log, command or healthcheck."""

    http: HttpReady | None = None
    log: str | None = Field(default=None, description="regex matched against the container log")
    command: list[str] | None = Field(default=None, description="exec in the container; exit 0")
    healthcheck: OwnOrGivenHealthcheck | None = Field(
        default=None,
        description="true: the image's (or compose service's) own healthcheck reports healthy; "
        "a mapping: this healthcheck, given to the container, reports healthy",
    )
    timeout: float = Field(default=60.0, gt=0)
    interval: float = Field(default=0.05, gt=0)

    @model_validator(mode="after")
    def _exactly_one(self) -> ReadinessSpec:
        kinds = ("http", "log", "command", "healthcheck")
        chosen = [k for k in kinds if getattr(self, k) is not None]
        if len(chosen) != 1:
            raise ValueError("give exactly one of http, log, command or healthcheck")
        if self.log is not None:
            try:
                re.compile(self.log)
            except re.error as exc:
                raise ValueError(f"log is not a valid regex: {exc}") from None
        return self


def _unknown_placeholder(*values: Any, known: tuple[str, ...] = CANARY_VARS) -> None:
    """Raise for a {name} that is not in known, in any string inside values
    ({capture.NAME} is checked by the canary spec, which knows the order of the steps)."""
    for text in _strings(*values):
        for name in _PLACEHOLDER.findall(CAPTURE_PLACEHOLDER.sub("", text)):
            if name not in known:
                raise ValueError(
                    f"unknown placeholder {{{name}}}; use one of "
                    + ", ".join("{" + v + "}" for v in known)
                    + " or {capture.NAME}"
                )


class Capture(_Model):
    """A value taken from a step's response for later steps ({capture.NAME}): exactly one of
    json (a JSON path in the body), regex (group 1, or the whole match, in the body), header
    or cookie (by name, from the session's cookie jar).

    secret: captured values are redacted from every message and evidence unless false (an id
    an auditor wants to see in a request path); session tokens never should be shown.
    """

    json_path: str | None = Field(default=None, alias="json")
    regex: str | None = None
    header: str | None = None
    cookie: str | None = None
    secret: bool = True

    @model_validator(mode="after")
    def _exactly_one(self) -> Capture:
        kinds = ("json", "regex", "header", "cookie")
        chosen = [k for k, v in zip(kinds, self.sources, strict=True) if v is not None]
        if len(chosen) != 1:
            raise ValueError("give exactly one of json, regex, header or cookie")
        if self.json_path is not None:
            jsonpath.parse(self.json_path)
        if self.regex is not None:
            try:
                re.compile(self.regex)
            except re.error as exc:
                raise ValueError(f"regex is not a valid regex: {exc}") from None
        return self

    @property
    def sources(self) -> tuple[str | None, ...]:
        return (self.json_path, self.regex, self.header, self.cookie)

    def describe(self) -> str:
        """Where the value comes from, for a problem message (never the value)."""
        kinds = ("JSON path", "regex", "header", "cookie")
        return next(f"{k} {v!r}" for k, v in zip(kinds, self.sources, strict=True) if v)


class HttpStep(_Model):
    """One HTTP request of a canary write or read; {i}, {marker}, {run}, {session} (the
    session's number) and {capture.NAME} (a value an earlier step captured) are filled in.

    A session (a cookie jar) spans a canary spec's setup and the steps that follow it.
    form: a form-encoded body (exclusive with json). expect_json: values that JSON paths of
    the response body must have.
    """

    KIND: ClassVar[str] = "http"

    method: Literal["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"] = "GET"
    path: str
    port: int
    json_body: Any = Field(default=None, alias="json")
    form: dict[str, str] | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    expect_status: int = 200
    expect_body_contains: str | None = None
    expect_json: dict[str, Any] = Field(default_factory=dict)
    capture: dict[str, Capture] = Field(default_factory=dict)
    timeout: float = Field(default=10.0, gt=0)

    @model_validator(mode="after")
    def _known_placeholders(self) -> HttpStep:
        if self.form is not None and self.json_body is not None:
            raise ValueError("give json or form as the body, not both")
        for path in self.expect_json:
            try:
                jsonpath.parse(path)
            except ValueError as exc:
                raise ValueError(f"expect_json: {exc}") from None
        for name in self.capture:
            if not re.fullmatch(r"\w+", name):
                raise ValueError(f"capture: name {name!r} may hold letters, digits and _ only")
        _unknown_placeholder(
            self.path,
            self.json_body,
            self.form,
            self.headers,
            self.expect_body_contains,
            self.expect_json,
            known=(*CANARY_VARS, SESSION_VAR),
        )
        return self

    def placeholder_fields(self) -> dict[str, Any]:
        """The fields whose strings are filled in, by name (for validation messages)."""
        return {
            "path": self.path,
            "json": self.json_body,
            "form": self.form,
            "headers": self.headers,
            "expect_body_contains": self.expect_body_contains,
            "expect_json": self.expect_json,
        }

    @property
    def changes_nothing(self) -> bool:
        """A GET or HEAD: a write step of this method proves nothing about user data."""
        return self.method in ("GET", "HEAD")


class ExecStep(_Model):
    """One command run in the container (docker exec) for a canary write or read.

    For services without a port: stdin, when given, is sent on standard input and then
    closed (a service reading JSON-lines requests). {i}, {marker} and {run} are filled in.
    """

    KIND: ClassVar[str] = "exec"

    argv: list[str] = Field(alias="exec", min_length=1)
    stdin: str | None = None
    expect_exit: int = Field(default=0, ge=0, le=255)
    expect_output_contains: str | None = None
    timeout: float = Field(default=10.0, gt=0)

    @model_validator(mode="after")
    def _known_placeholders(self) -> ExecStep:
        if not self.argv[0]:
            raise ValueError("exec: the command (its first word) is empty")
        _unknown_placeholder(self.argv, self.stdin, self.expect_output_contains)
        return self


# Tags of the canary step union; pydantic puts them in error locations, where they are dropped
# (they are no YAML key: a space cannot start one in a config).
_STEP_TAGS = {" http", " exec"}


def _step_kind(value: Any) -> str:
    """Which step a YAML mapping is: one with an `exec` key is a command, others HTTP."""
    if isinstance(value, dict) and "exec" in value:
        return " exec"
    if isinstance(value, ExecStep):
        return " exec"
    return " http"


CanaryStep = Annotated[
    Annotated[HttpStep, Tag(" http")] | Annotated[ExecStep, Tag(" exec")],
    Discriminator(_step_kind),
]


MAX_CANARY_CONCURRENCY = 32  # concurrent canary writers at most: a load, not a flood


class CanarySpec(_Model):
    """Canary records written through the service before a cycle and read back after it.

    The steps are all of one kind (http or exec): kind names the canary driver. setup (HTTP
    only) opens a session: it runs with a fresh cookie jar before a cycle's writes and again
    before the reads after it (a restart logs everyone out). A value captured in setup is the
    session's; one captured by a write step is kept with its record, for the reads. With
    concurrency N, N writers share the records, each in a session of its own; so do the
    readers after the cycle.
    """

    records: int = Field(default=20, ge=1, le=100_000)
    concurrency: int = Field(
        default=1,
        ge=1,
        le=MAX_CANARY_CONCURRENCY,
        description="records written (and read back) at the same time; 1: one after another",
    )
    setup: list[HttpStep] = Field(default_factory=list)
    write: list[CanaryStep] = Field(min_length=1)
    read: list[CanaryStep] = Field(min_length=1)

    @model_validator(mode="after")
    def _one_kind(self) -> CanarySpec:
        kinds = {step.KIND for step in (*self.write, *self.read)}
        if len(kinds) > 1:
            raise ValueError(
                "the write and read steps are all HTTP (path, port) or all exec; "
                "mixing them is not supported"
            )
        if self.setup and self.kind != HttpStep.KIND:
            raise ValueError("setup opens an HTTP session: it needs HTTP write and read steps")
        for n, step in enumerate(self.setup):
            for field_name, value in step.placeholder_fields().items():
                used = {m for t in _strings(value) for m in _PLACEHOLDER.findall(t)}
                if used & {"i", "marker"}:
                    raise ValueError(
                        f"setup[{n}].{field_name}: setup runs once per session, not per "
                        "record: it has {run}, {session} and earlier captures, not {i} or {marker}"
                    )
        return self

    @model_validator(mode="after")
    def _captured_before_use(self) -> CanarySpec:
        """Every {capture.NAME} names a value an earlier step of the session captured."""
        setup = _check_captures("setup", self.setup, set())
        written = _check_captures("write", self.write, setup)
        _check_captures("read", self.read, written)
        return self

    @property
    def kind(self) -> str:
        """The steps' kind, the key of the canary driver that runs them."""
        return self.write[0].KIND

    @property
    def changes_nothing(self) -> bool:
        """Whether every write step only reads (GET/HEAD): then a record "read back" was never
        written, and the retention checks prove nothing about user data."""
        return all(isinstance(s, HttpStep) and s.changes_nothing for s in self.write)


def _check_captures(block: str, steps: list[Any], known: set[str]) -> set[str]:
    """The names captured after steps, given those known before; ValueError naming the step
    and field of a {capture.NAME} that no earlier step captured."""
    known = set(known)
    for n, step in enumerate(steps):
        if not isinstance(step, HttpStep):
            continue
        for field_name, value in step.placeholder_fields().items():
            for text in _strings(value):
                for name in CAPTURE_PLACEHOLDER.findall(text):
                    if name not in known:
                        earlier = ", ".join(sorted(known)) or "none"
                        raise ValueError(
                            f"{block}[{n}].{field_name}: {{capture.{name}}} is not captured "
                            f"by an earlier step (captured before it: {earlier})"
                        )
        known |= set(step.capture)
    return known


def _container_path(value: str) -> str:
    if not value.startswith("/"):
        raise ValueError("must be an absolute path inside the container")
    return value.rstrip("/") or "/"


ContainerPath = Annotated[str, AfterValidator(_container_path)]


_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]i?B|B)?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "B": 1, "K": 1000, "M": 1000**2, "G": 1000**3, "T": 1000**4}


def parse_size(value: Any) -> int:
    """Bytes from a number or a string such as "512MB" or "2GiB" (KiB = 1024, KB = 1000)."""
    if isinstance(value, bool):
        raise ValueError("expected a number of bytes or a size such as 2GiB")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    match = _SIZE.match(value) if isinstance(value, str) else None
    if match is None:
        raise ValueError("expected a number of bytes or a size such as 2GiB")
    unit = (match.group(2) or "").upper()
    scale = 1024 ** (" KMGT".index(unit[0])) if "I" in unit else _UNITS[unit[:1]]
    number = float(match.group(1)) * scale
    if number > 2**63:
        raise ValueError("is larger than any database SQLite can hold")
    return int(number)


class DatabaseSpec(_Model):
    """The target's SQLite file, and the limits on examining copies of it on the host."""

    path: ContainerPath
    max_size: Annotated[int, BeforeValidator(parse_size), Field(gt=0)] = Field(
        default=4 * 1024**3, description="largest database (with its -wal) copied out"
    )
    query_timeout: float = Field(
        default=60.0, gt=0, description="seconds any one statement on a copy may run"
    )


JournalMode = Literal["wal", "delete", "truncate", "persist", "memory", "off"]


class DatabaseEntry(DatabaseSpec):
    """One SQLite file of the `databases:` list, with what is expected of it.

    Its name appears in the check ids when the list holds more than one database
    (`fresh_install.schema[vectors]`).
    """

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]*$", max_length=63)
    manifest: Path
    journal_mode: JournalMode = "wal"
    persist: bool = Field(
        default=True, description="false: a cache the service may lose; losing it is no finding"
    )
    volatile: list[Annotated[str, Field(min_length=1)]] = Field(
        default_factory=list,
        description="tables written on every start: compared by presence, not content",
    )
    append_only: list[Annotated[str, Field(min_length=1)]] = Field(
        default_factory=list,
        description="tables whose rows are only added: a changed or lost row is a finding",
    )
    immutable: list[Annotated[str, Field(min_length=1)]] = Field(
        default_factory=list,
        description="tables that never change: any changed, lost or added row is a finding",
    )

    @model_validator(mode="after")
    def _one_kind_per_table(self) -> DatabaseEntry:
        seen: dict[str, str] = {}
        for kind in ("volatile", "append_only", "immutable"):
            for table in getattr(self, kind):
                if table in seen and seen[table] != kind:
                    raise ValueError(
                        f"table {clip_value(table)} is listed under both {seen[table]} and "
                        f"{kind}: give each table one kind"
                    )
                seen[table] = kind
        return self


# The name of the one database of the `database:` + `expect:` shorthand.
SHORTHAND_NAME = "main"


class ComposeSpec(_Model):
    """A service of a compose file; paths are relative to the config file."""

    file: Path
    service: str = Field(min_length=1)
    project_name: str | None = Field(
        default=None,
        pattern=r"^[a-z0-9][a-z0-9_-]*$",
        max_length=40,
        description="stem of the project name; the run id is always added (runs never share one)",
    )
    env_files: list[Path] = Field(default_factory=list)
    profiles: list[str] = Field(default_factory=list)
    bind_mounts: Literal["redirect", "read-only"] = Field(
        default="redirect",
        description="redirect: each writable bind gets a fresh temp folder per run; "
        "read-only: the user's folder is mounted read-only",
    )


class VolumeSpec(_Model):
    """Where persistaudit mounts the fresh named volume it creates for the audit."""

    mount: ContainerPath


class ExpectSpec(_Model):
    manifest: Path
    journal_mode: JournalMode = "wal"


class GracefulStopSpec(_Model):
    """restart.graceful_stop: on `docker stop` the service exits by itself within timeout."""

    enabled: bool = True
    timeout: float = Field(
        default=10.0, gt=0, le=300, description="seconds docker stop waits before SIGKILL"
    )


class IdempotentInitSpec(_Model):
    """restart.idempotent_init: starts on an initialised volume change nothing and log no
    new error."""

    enabled: bool = True
    starts: int = Field(default=2, ge=1, le=10, description="starts on the initialised volume")


class CrashSpec(_Model):
    """crash: SIGKILL in the middle of a write load through the service; every acknowledged
    write must be there after the restart. Off unless enabled (it takes a while)."""

    enabled: bool = False
    rounds: int = Field(default=3, ge=1, le=20)
    writers: int = Field(default=2, ge=1, le=16, description="concurrent writers of the load")
    kill_after: tuple[float, float] = Field(
        default=(0.5, 2.0),
        description="the kill lands at a random point this many seconds into the load",
    )
    seed: int | None = Field(default=None, description="fixes the kill points (default: random)")

    @model_validator(mode="after")
    def _window(self) -> CrashSpec:
        low, high = self.kill_after
        if not 0 < low <= high <= 60:
            raise ValueError("kill_after: give [low, high] seconds with 0 < low <= high <= 60")
        return self


class BackupSpec(_Model):
    """backup: an online backup of the live database, verified and restored into a fresh
    volume. Off unless enabled.

    command (run in the container) is the service's own backup; it writes the backup to
    output. Without it, persistaudit takes the backup with SQLite's backup API from a paused,
    consistent copy.
    """

    enabled: bool = False
    command: list[str] | None = Field(default=None, min_length=1)
    output: ContainerPath | None = None
    database: str | None = Field(
        default=None, description="the declared database the command backs up (default: the first)"
    )
    timeout: float = Field(default=120.0, gt=0)

    @model_validator(mode="after")
    def _command_and_output(self) -> BackupSpec:
        if (self.command is None) != (self.output is None):
            raise ValueError("command and output go together: output is where command writes")
        return self


class UpgradeSpec(_Model):
    """upgrade: the previous version (upgrade_from) installed and given canaries, then the
    current one started on its volume. On when upgrade_from is given, unless enabled: false."""

    enabled: bool | None = None  # None: on exactly when upgrade_from is given (TargetConfig)


class UpgradeFrom(_Model):
    """upgrade_from: the previous version, as an image or a build (like the target's own)."""

    image: str | None = None
    build: BuildSpec | None = None

    @model_validator(mode="after")
    def _image_or_build(self) -> UpgradeFrom:
        if (self.image is None) == (self.build is None):
            raise ValueError("give exactly one of image or build (the previous version)")
        return self


class SuitesSpec(_Model):
    """Which optional suites run, and how; a suite switched off is listed as not tested."""

    graceful_stop: GracefulStopSpec = Field(default_factory=GracefulStopSpec)
    idempotent_init: IdempotentInitSpec = Field(default_factory=IdempotentInitSpec)
    crash: CrashSpec = Field(default_factory=CrashSpec)
    backup: BackupSpec = Field(default_factory=BackupSpec)
    upgrade: UpgradeSpec = Field(default_factory=UpgradeSpec)

    def enabled(self, check_id: str) -> bool:
        """Whether the check runs: its suite, or the check itself, is switched on."""
        base = check_id.split("[", 1)[0]
        suite, _, check = base.partition(".")
        if suite in ("crash", "backup", "upgrade"):
            return bool(getattr(self, suite).enabled)
        if suite == "restart" and check in ("graceful_stop", "idempotent_init"):
            return bool(getattr(self, check).enabled)
        return True


def _known_check(value: str) -> str:
    """A check id in the catalog, possibly for one database (`fresh_install.schema[vectors]`)."""
    if not catalog.known(value):
        raise ValueError(
            f"unknown check {clip_value(value)}: the known checks are {', '.join(catalog.ids())} "
            "(suite.check, or suite.check[name] for one database)"
        )
    return value


class Waiver(_Model):
    """An auditor's acceptance of a known failure, until a date."""

    check: Annotated[str, AfterValidator(_known_check)]
    justification: str = Field(min_length=1)
    accepted_by: str = Field(min_length=1)
    expires: date


class TargetConfig(_Model):
    """A target to audit. Paths in it are resolved against the config file's folder."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]*$", max_length=63)
    image: str | None = None
    build: BuildSpec | None = None
    compose: ComposeSpec | None = None
    env: dict[str, str] = Field(default_factory=dict)
    command: list[str] | None = None
    restart_policy: Literal["no", "on-failure", "always", "unless-stopped"] = "no"
    # Exactly one of database (with expect) or databases; see `declared_databases`.
    database: DatabaseSpec | None = None
    databases: list[DatabaseEntry] | None = Field(default=None, min_length=1)
    volume: VolumeSpec | None = None  # required for image and build; compose has its own
    readiness: ReadinessSpec
    canary: CanarySpec
    expect: ExpectSpec | None = None
    redact: list[str] = Field(default_factory=list)
    waivers: list[Waiver] = Field(default_factory=list)
    suites: SuitesSpec = Field(default_factory=SuitesSpec)
    upgrade_from: UpgradeFrom | None = None
    source: Path = Field(default=Path("."), exclude=True)

    @model_validator(mode="before")
    @classmethod
    def _upgrade_on_with_upgrade_from(cls, data: Any) -> Any:
        """suites.upgrade.enabled left out: the suite runs when upgrade_from is given."""
        if not isinstance(data, dict) or data.get("upgrade_from") is None:
            return data
        suites = data.get("suites")
        if isinstance(suites, SuitesSpec):
            if suites.upgrade.enabled is None:
                on = suites.upgrade.model_copy(update={"enabled": True})
                return {**data, "suites": suites.model_copy(update={"upgrade": on})}
            return data
        suites = {} if suites is None else suites
        if not isinstance(suites, dict):
            return data  # the field's own validation names it
        upgrade = suites.get("upgrade")
        upgrade = {} if upgrade is None else upgrade
        if isinstance(upgrade, dict) and upgrade.get("enabled") is None:
            return {**data, "suites": {**suites, "upgrade": {**upgrade, "enabled": True}}}
        return data

    @model_validator(mode="after")
    def _image_build_or_compose(self) -> TargetConfig:
        given = [k for k in ("image", "build", "compose") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of image, build or compose")
        if self.compose is None and self.volume is None:
            raise ValueError(
                "volume: Field required with image or build (volume: {mount: /data}); a "
                "compose target takes its mounts from the compose file"
            )
        return self

    @model_validator(mode="after")
    def _database_or_databases(self) -> TargetConfig:
        if (self.database is None) == (self.databases is None):
            raise ValueError("give exactly one of database (with expect) or databases")
        if self.database is not None and self.expect is None:
            raise ValueError("expect is required with database (or list them under databases)")
        if self.databases is not None and self.expect is not None:
            raise ValueError("expect goes with database; under databases, each has its own")
        for key in ("name", "path"):
            seen: set[str] = set()
            for entry in self.databases or []:
                value = getattr(entry, key)
                if value in seen:
                    raise ValueError(f"databases: two databases have the {key} {value}")
                seen.add(value)
        return self

    @model_validator(mode="after")
    def _backup_database_declared(self) -> TargetConfig:
        name = self.suites.backup.database
        known = [d.name for d in self.declared_databases]
        if name is not None and name not in known:
            raise ValueError(
                f"suites.backup.database: no database named {clip_value(name)}; the declared "
                f"ones are {', '.join(known)}"
            )
        return self

    @model_validator(mode="after")
    def _upgrade_needs_upgrade_from(self) -> TargetConfig:
        if self.suites.upgrade.enabled and self.upgrade_from is None:
            raise ValueError(
                "suites.upgrade.enabled: the upgrade suite needs upgrade_from (the previous "
                "version: upgrade_from: {image: ...} or {build: {context: ...}})"
            )
        return self

    @property
    def declared_databases(self) -> list[DatabaseEntry]:
        """Every database to audit; the shorthand is one database named "main"."""
        if self.databases is not None:
            return list(self.databases)
        # The validator's promise: with no `databases`, both are given.
        assert self.database is not None
        assert self.expect is not None
        return [
            DatabaseEntry(
                name=SHORTHAND_NAME,
                path=self.database.path,
                max_size=self.database.max_size,
                query_timeout=self.database.query_timeout,
                manifest=self.expect.manifest,
                journal_mode=self.expect.journal_mode,
            )
        ]

    @property
    def per_database_ids(self) -> bool:
        """Whether check ids name their database (`check[name]`): with more than one."""
        return len(self.declared_databases) > 1

    def check_id(self, check: str, database: str) -> str:
        """The id of check's result for one database: plain with one database."""
        return f"{check}[{database}]" if self.per_database_ids else check

    def metric_name(self, metric: str, database: str) -> str:
        """A per-database metric's name: "Backup size [cache]"; plain with one database."""
        return f"{metric} [{database}]" if self.per_database_ids else metric

    @property
    def image_ref(self) -> str:
        """The image to run: the given one, the tag persistaudit builds, or the compose service."""
        if self.image is not None:
            return self.image
        if self.compose is not None:
            return f"service {self.compose.service} of {self.compose.file.name}"
        assert self.build is not None
        return self.build.tag or f"persistaudit/{self.name}:audit"

    @property
    def volume_mount(self) -> str:
        """Where the image driver mounts its volume (configs without compose have one)."""
        if self.volume is None:
            raise ValueError(f"{self.name}: a compose target has no volume key")
        return self.volume.mount


def _strings(*values: Any) -> list[str]:
    out: list[str] = []
    for value in values:
        if isinstance(value, str):
            out.append(value)
        elif isinstance(value, dict):
            out += _strings(*value.keys(), *value.values())
        elif isinstance(value, list):
            out += _strings(*value)
    return out


def interpolate_env(value: Any, environ: dict[str, str]) -> Any:
    """Replace ${VAR} and ${VAR:-default} in string values, as compose files do."""
    if isinstance(value, str):

        def sub(match: re.Match[str]) -> str:
            name, default = match.group(1), match.group(2)
            if name in environ:
                return environ[name]
            if default is not None:
                return default
            raise ConfigError(f"environment variable {name} is not set (used as ${{{name}}})")

        return _ENV_REF.sub(sub, value)
    if isinstance(value, dict):
        return {k: interpolate_env(v, environ) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate_env(v, environ) for v in value]
    return value


def _nul_at(value: Any, loc: tuple[int | str, ...] = ()) -> tuple[int | str, ...] | None:
    """Where a string with a NUL byte is (paths, names and env values cannot hold one)."""
    if isinstance(value, str):
        return loc if "\0" in value else None
    items: list[tuple[Any, Any]] = []
    if isinstance(value, dict):
        items = list(value.items())
    elif isinstance(value, list):
        items = list(enumerate(value))
    for key, item in items:
        found = _nul_at(key, loc) if isinstance(key, str) else None
        found = found or _nul_at(item, (*loc, key))
        if found is not None:
            return found
    return None


def load_config(
    path: str | Path, environ: dict[str, str] | None = None, *, require_manifest: bool = True
) -> TargetConfig:
    """Load and validate a target config; raise ConfigError with file, line and field.

    require_manifest=False serves `persistaudit snapshot`, which writes the manifest.
    """
    path = Path(path)
    data, text = read_yaml(path)
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of config keys at the top level")
    try:
        data = interpolate_env(data, dict(os.environ if environ is None else environ))
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    nul = _nul_at(data)
    if nul is not None:
        raise ConfigError(field_message(path, text, nul, "contains a NUL byte"))
    try:
        config = TargetConfig.model_validate({**data, "source": path.resolve()})
    except ValidationError as exc:
        raise ConfigError(_validation_message(path, text, exc, _STEP_TAGS)) from None
    if config.compose is not None:
        for key in ("volume", "command", "restart_policy"):
            if key in data:
                raise ConfigError(
                    field_message(
                        path,
                        text,
                        (key,),
                        "not used with compose: the compose file says where volumes are "
                        "mounted, what runs and how it restarts. Hint: remove it",
                    )
                )
    try:
        return _resolve_paths(path, config, require_manifest)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: a path in it cannot be used: {exc}") from None


def _resolve_paths(path: Path, config: TargetConfig, require_manifest: bool) -> TargetConfig:
    """Resolve the config's host paths against its folder and check that they exist."""
    base = path.resolve().parent
    updates: dict[str, Any] = {}
    manifests: list[tuple[str, Path]] = []
    if config.expect is not None:
        updates["expect"] = config.expect.model_copy(
            update={"manifest": (base / config.expect.manifest).resolve()}
        )
        manifests.append(("expect.manifest", updates["expect"].manifest))
    if config.databases is not None:
        updates["databases"] = [
            d.model_copy(update={"manifest": (base / d.manifest).resolve()})
            for d in config.databases
        ]
        manifests += [
            (f"databases.{i}.manifest", d.manifest) for i, d in enumerate(updates["databases"])
        ]
    if config.build is not None:
        updates["build"] = _resolve_build(path, base, config.build, "build")
    if config.upgrade_from is not None and config.upgrade_from.build is not None:
        build = _resolve_build(path, base, config.upgrade_from.build, "upgrade_from.build")
        updates["upgrade_from"] = config.upgrade_from.model_copy(update={"build": build})
    if config.compose is not None:
        updates["compose"] = _resolve_compose(path, base, config.compose)
    for field, manifest in manifests:
        if require_manifest and not manifest.is_file():
            raise ConfigError(f"{path}: {field}: file {manifest} not found")
    return config.model_copy(update=updates)


def _resolve_build(path: Path, base: Path, spec: BuildSpec, key: str) -> BuildSpec:
    """A build's context, resolved against the config's folder; it and its Dockerfile exist."""
    context = (base / spec.context).resolve()
    if not context.is_dir():
        raise ConfigError(f"{path}: {key}.context: folder {context} does not exist")
    if not (context / spec.dockerfile).is_file():
        raise ConfigError(f"{path}: {key}.dockerfile: {spec.dockerfile} not found in {context}")
    return spec.model_copy(update={"context": context})


def _resolve_compose(path: Path, base: Path, spec: ComposeSpec) -> ComposeSpec:
    """The compose file and env files, resolved against the config's folder; they must exist."""
    file = (base / spec.file).resolve()
    if not file.is_file():
        raise ConfigError(f"{path}: compose.file: file {file} not found")
    env_files = []
    for i, env_file in enumerate(spec.env_files):
        resolved = (base / env_file).resolve()
        if not resolved.is_file():
            raise ConfigError(f"{path}: compose.env_files.{i}: file {resolved} not found")
        env_files.append(resolved)
    return spec.model_copy(update={"file": file, "env_files": env_files})

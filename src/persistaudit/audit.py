"""One target's audit: the fresh install and the lifecycle cycles, each done once.

The suites ask for stages; a stage runs on first use and is cached, so checks can be run
in any order or alone. Stages record what they did as evidence, in the order it happened.
"""

from __future__ import annotations

import functools
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from docker import DockerClient

from persistaudit import canary, engine, retention, schema
from persistaudit.config import TargetConfig
from persistaudit.exceptions import CanaryError, LimitExceeded, PersistauditError, TargetBlocked
from persistaudit.findings import Evidence
from persistaudit.inspect import DatabaseFacts, inspect_database
from persistaudit.manifest import Manifest, load_manifest
from persistaudit.runtime import ImageRuntime, TargetRuntime
from persistaudit.snapshot import Snapshot, take_snapshot
from persistaudit.sqlite_guard import Limits


@dataclass
class DatabaseState:
    """A snapshot of the database at one point, or why none could be taken."""

    label: str
    snapshot: Snapshot | None = None
    facts: DatabaseFacts | None = None
    schema: Manifest | None = None
    error: str = ""
    # The error is a limit (size, time): the checks that need this state could not run, so
    # they are BLOCKED rather than failed.
    blocked: bool = False


@dataclass
class FreshInstall:
    ready_s: float | None
    blocked: TargetBlocked | None
    database: DatabaseState
    actions: list[Evidence] = field(default_factory=list)
    logs: list[str] = field(default_factory=list)  # the container's log when it was judged


@dataclass
class Cycle:
    """A restart or re-create: canaries written, the cycle, and what was found after it."""

    name: str
    canaries: list[canary.Canary] = field(default_factory=list)
    before: DatabaseState | None = None
    after: DatabaseState | None = None
    ready_s: float | None = None
    read_back: canary.ReadBack | None = None
    retention: retention.Retention | None = None
    failure: str = ""  # the cycle could not be completed, and why
    logs: list[str] = field(default_factory=list)
    actions: list[Evidence] = field(default_factory=list)


class TargetAudit:
    def __init__(
        self,
        config: TargetConfig,
        client: DockerClient,
        run_id: str,
        workdir: Path,
        log: Callable[[str], None],
        runtime: TargetRuntime | None = None,
    ) -> None:
        self.config = config
        self.run_id = run_id
        self.workdir = workdir
        self.log = log
        self.runtime = runtime or ImageRuntime(config, client, run_id, log)
        self._next_canary = 1
        self._written: list[canary.Canary] = []
        self._snapshots = 0
        self.limits = Limits(query_timeout=config.database.query_timeout)

    @classmethod
    def create(
        cls, config: TargetConfig, client: DockerClient, log: Callable[[str], None]
    ) -> TargetAudit:
        """A new audit with its own run id and scratch folder (removed by close())."""
        workdir = Path(tempfile.mkdtemp(prefix=f"persistaudit-{config.name}-"))
        return cls(config, client, engine.new_run_id(), workdir, log)

    @functools.cached_property
    def manifest(self) -> Manifest:
        return load_manifest(self.config.expect.manifest)

    def close(self) -> list[str]:
        """Remove the target's containers and volume, and the host copies of its database."""
        shutil.rmtree(self.workdir, ignore_errors=True)
        removed = self.runtime.close()
        if removed:
            self.log("removed " + ", ".join(removed))
        return removed

    def snapshot(self, label: str) -> DatabaseState:
        """Copy the database out of the running container and inspect the copy."""
        self._snapshots += 1
        dest = self.workdir / f"{self._snapshots:02d}-{label}"
        state = DatabaseState(label)
        try:
            state.snapshot = take_snapshot(
                self.runtime.container,
                self.config.database.path,
                dest,
                max_size=self.config.database.max_size,
            )
            state.facts = inspect_database(state.snapshot.path, self.limits)
            state.schema = schema.from_copy(state.snapshot.path, self.config.name, self.limits)
        except LimitExceeded as exc:
            state.error, state.blocked = str(exc), True
        except PersistauditError as exc:
            state.error = str(exc)
        return state

    @functools.cached_property
    def fresh(self) -> FreshInstall:
        self.log(f"fresh install of {self.config.name} on an empty volume")
        try:
            ready_s = self.runtime.start()
        except TargetBlocked as exc:
            self.log(f"BLOCKED: {exc}")
            return FreshInstall(
                None, exc, DatabaseState("fresh"), self._start_actions(exc), self._logs()
            )
        self.log(f"ready in {ready_s:.1f} s; snapshotting the database")
        return FreshInstall(
            ready_s, None, self.snapshot("fresh"), self._start_actions(None), self._logs()
        )

    def _logs(self) -> list[str]:
        try:
            return self.runtime.container.logs(tail=2000)
        except RuntimeError:
            return []  # no container was ever created

    def _start_actions(self, blocked: TargetBlocked | None) -> list[Evidence]:
        d = self.runtime.describe()
        cmd = (
            f"docker volume create {d.get('volume')}\n"
            f"docker run -d --restart {self.config.restart_policy} "
            f"-v {d.get('volume')}:{self.config.volume.mount} {d.get('image')}"
        )
        outcome = f"blocked: {blocked}" if blocked else "ready"
        return [Evidence("Start on a fresh volume", f"$ {cmd}\n# {outcome}", "command")]

    @functools.cached_property
    def restart_cycle(self) -> Cycle:
        return self._cycle("restart", self.runtime.restart, "docker restart {name}")

    @functools.cached_property
    def recreate_cycle(self) -> Cycle:
        return self._cycle(
            "recreate",
            self.runtime.recreate,
            "docker stop {name} && docker rm {name}  # volume kept\n"
            "docker run -d ... (same image, same volume)",
        )

    def _cycle(self, name: str, action: Callable[[], float], command: str) -> Cycle:
        cycle = Cycle(name)
        spec = self.config.canary
        self.log(f"{name}: writing {spec.records} canary records through the service")
        try:
            new = canary.write(self.runtime.container, spec, self.run_id, self._next_canary)
        except CanaryError as exc:
            cycle.failure = str(exc)
            return cycle
        self._next_canary += len(new)
        self._written += new
        cycle.canaries = list(self._written)
        cycle.actions.append(
            Evidence(
                f"Write {len(new)} canary records",
                f"{spec.write[0].method} {spec.write[0].path} x {len(new)} "
                f"(markers {new[0].marker} .. {new[-1].marker}); "
                f"{len(cycle.canaries)} canaries in all",
                "command",
            )
        )
        cycle.before = self.snapshot(f"before-{name}")
        container_name = self.runtime.container.name
        started = time.monotonic()
        try:
            cycle.ready_s = action()
        except TargetBlocked as exc:
            cycle.failure = f"the target did not come back after the {name}: {exc}"
            cycle.logs = list(exc.evidence.get("logs", []))  # type: ignore[call-overload]
            return cycle
        cycle.actions.append(
            Evidence(
                f"{name.capitalize()} the container",
                f"$ {command.format(name=container_name)}\n# ready again after "
                f"{time.monotonic() - started:.1f} s ({self.runtime.container.name})",
                "command",
            )
        )
        self.log(f"{name}: reading {len(cycle.canaries)} canary records back")
        cycle.read_back = canary.read(self.runtime.container, spec, self.run_id, cycle.canaries)
        cycle.after = self.snapshot(f"after-{name}")
        if cycle.before.facts and cycle.after.facts:
            cycle.retention = retention.compare(cycle.before.facts, cycle.after.facts)
        return cycle

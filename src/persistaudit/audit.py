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

from persistaudit import canary, engine, retention, schema, signals
from persistaudit.canary_drivers import driver_for
from persistaudit.config import TargetConfig
from persistaudit.exceptions import (
    CanaryError,
    LimitExceeded,
    PersistauditError,
    TargetBlocked,
    TargetRemoved,
)
from persistaudit.findings import Evidence
from persistaudit.inspect import DatabaseFacts, inspect_database
from persistaudit.manifest import Manifest, load_manifest
from persistaudit.readiness import LOG_TAIL, fold_repeats
from persistaudit.runtime import Runtime, runtime_for
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
    failure: str = ""  # the target did not come back after the cycle: a finding
    blocked: str = ""  # the cycle could not be exercised or judged, and why: no finding
    logs: list[str] = field(default_factory=list)
    actions: list[Evidence] = field(default_factory=list)
    evidence: list[Evidence] = field(default_factory=list)  # why it was blocked


REMOVAL_SETTLE_S = 2.0  # how long a removal may take to show, after a step failed
LOG_SETTLE_S = 1.5  # at most, how long to let the log tail catch up with a refused request


def removed_message(gone: list[str], during: str) -> str:
    """One line naming what something else removed, for a BLOCKED summary."""
    verb = "was" if len(gone) == 1 else "were"
    return (
        f"{' and '.join(gone)} {verb} removed by something else during {during} (another "
        "job's docker rm -f, or a clean-up?), so it could not be judged"
    )


class TargetAudit:
    def __init__(
        self,
        config: TargetConfig,
        client: DockerClient,
        run_id: str,
        workdir: Path,
        log: Callable[[str], None],
        runtime: Runtime | None = None,
    ) -> None:
        self.config = config
        self.run_id = run_id
        self.workdir = workdir
        self.log = log
        self.runtime = runtime or runtime_for(config, client, run_id, log)
        self.canaries = driver_for(config.canary)
        self._next_canary = 1
        self._written: list[canary.Canary] = []
        self._snapshots = 0
        self.limits = Limits(query_timeout=config.database.query_timeout)

    @classmethod
    def create(
        cls, config: TargetConfig, client: DockerClient, log: Callable[[str], None]
    ) -> TargetAudit:
        """A new audit with its own run id and scratch folder (removed by close()).

        The caller keeps it before an interrupt can arrive: hold it inside
        signals.shielded(resume=True).
        """
        run_id = engine.new_run_id()
        # Named by the run, so that `clean` finds it after the run was killed.
        workdir = Path(tempfile.mkdtemp(prefix=engine.run_prefix(config.name, run_id) + "-"))
        return cls(config, client, run_id, workdir, log)

    @functools.cached_property
    def manifest(self) -> Manifest:
        return load_manifest(self.config.expect.manifest)

    def close(self) -> list[str]:
        """Remove the target's containers and volume, and the host copies of its database.

        Signals wait until it is done: a second Ctrl-C does not leave half of it behind.
        """
        with signals.shielded():
            shutil.rmtree(self.workdir, ignore_errors=True)
            removal = self.runtime.close()
            if removal.removed:
                self.log("removed " + ", ".join(removal.removed))
            if removal.left:
                self.log(removal.warning())
            return removal.removed

    def snapshot(self, label: str) -> DatabaseState:
        """Copy the database out of the running container and inspect the copy.

        A container removed meanwhile raises TargetRemoved: that is not a missing database.
        """
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
        except TargetRemoved:
            raise
        except LimitExceeded as exc:
            state.error, state.blocked = str(exc), True
        except PersistauditError as exc:
            state.error = str(exc)
        return state

    def removed(self, during: str, *, settle: bool = False) -> TargetBlocked | None:
        """BLOCKED ("removed by something else") when the run's container or volume is gone.

        With settle, after a step failed: a `docker rm -f` kills the service before the engine
        shows the container as removing, so wait a little for the engine to catch up.
        """
        deadline = time.monotonic() + (REMOVAL_SETTLE_S if settle else 0)
        while not (gone := self.runtime.missing()) and time.monotonic() < deadline:
            time.sleep(0.05)
        if not gone:
            return None
        message = removed_message(gone, during)
        self.log(f"BLOCKED: {message}")
        return TargetBlocked(
            message, reason="removed", evidence={"reason": "removed", "status": "removed"}
        )

    @functools.cached_property
    def fresh(self) -> FreshInstall:
        self.log(f"fresh install of {self.config.name} on an empty volume")
        try:
            ready_s = self.runtime.start()
            self.log(f"ready in {ready_s:.1f} s; snapshotting the database")
            database = self.snapshot("fresh")
        except TargetBlocked as exc:
            removed = self.removed("the fresh install")  # a removal shows as NotFound, not this
            if removed is None:
                self.log(f"BLOCKED: {exc}")
            return self._fresh_blocked(removed or exc)
        except Exception:
            removed = self.removed("the fresh install", settle=True)
            if removed is None:
                raise
            return self._fresh_blocked(removed)
        removed = self.removed("the fresh install", settle=True) if database.error else None
        if removed is not None:
            return self._fresh_blocked(removed)
        return FreshInstall(ready_s, None, database, self._start_actions(None), self._logs())

    def _fresh_blocked(self, blocked: TargetBlocked) -> FreshInstall:
        return FreshInstall(
            None, blocked, DatabaseState("fresh"), self._start_actions(blocked), self._logs()
        )

    def _logs(self, tail: int = 2000) -> list[str]:
        try:
            return self.runtime.container.logs(tail=tail)
        except RuntimeError:
            return []  # no container was ever created

    def _start_actions(self, blocked: TargetBlocked | None) -> list[Evidence]:
        d = self.runtime.describe()
        cmd = (
            f"docker volume create {d.volume}\n"
            f"docker run -d --restart {self.config.restart_policy} "
            f"-v {d.volume}:{self.config.volume.mount} "
            f"{d.image_id or d.image}  # {d.image}"
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
        """Write canaries, run the cycle, read them back; BLOCKED if the target vanished."""
        cycle = Cycle(name)
        try:
            self._exercise(cycle, action, command)
        except Exception:
            if not self._note_removed(cycle, settle=True):
                raise
            return cycle
        # A read-back or snapshot that failed because the target vanished is no data loss.
        self._note_removed(cycle, settle=_went_wrong(cycle))
        return cycle

    def _note_removed(self, cycle: Cycle, *, settle: bool) -> bool:
        removed = self.removed(f"the {cycle.name} cycle", settle=settle)
        if removed is None:
            return False
        cycle.blocked, cycle.failure = str(removed), ""
        return True

    def _exercise(self, cycle: Cycle, action: Callable[[], float], command: str) -> None:
        name = cycle.name
        spec = self.config.canary
        self.log(f"{name}: writing {spec.records} canary records through the service")
        try:
            new = self.canaries.write(self.runtime.container, self.run_id, self._next_canary)
        except CanaryError as exc:
            # Nothing was restarted yet: the cycle was not exercised, so it proves nothing.
            cycle.blocked = f"the {name} cycle could not be exercised: {exc}"
            cycle.evidence = self._canary_evidence(exc)
            self.log(f"BLOCKED: {cycle.blocked}")
            return
        self._next_canary += len(new)
        self._written += new
        cycle.canaries = list(self._written)
        cycle.actions.append(
            Evidence(
                f"Write {len(new)} canary records",
                f"{self.canaries.describe(new)} "
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
            probes = list(exc.evidence.get("health_log", []))  # type: ignore[call-overload]
            if probes:
                cycle.logs += ["--- healthcheck results (State.Health.Log) ---", *probes]
            return
        cycle.actions.append(
            Evidence(
                f"{name.capitalize()} the container",
                f"$ {command.format(name=container_name)}\n# ready again after "
                f"{time.monotonic() - started:.1f} s ({self.runtime.container.name})",
                "command",
            )
        )
        self.log(f"{name}: reading {len(cycle.canaries)} canary records back")
        cycle.read_back = self.canaries.read(self.runtime.container, self.run_id, cycle.canaries)
        cycle.after = self.snapshot(f"after-{name}")
        if cycle.before.facts and cycle.after.facts:
            cycle.retention = retention.compare(cycle.before.facts, cycle.after.facts)

    def _settled_logs(self, tail: int) -> list[str]:
        """The log tail once it stops growing (briefly): the engine collects logs a little late,
        and the lines that explain a refused request come just before the answer."""
        deadline = time.monotonic() + LOG_SETTLE_S
        time.sleep(0.25)
        logs = self._logs(tail=tail)
        while time.monotonic() < deadline:
            time.sleep(0.25)
            again = self._logs(tail=tail)
            if again == logs:
                break
            logs = again
        return logs

    def _canary_evidence(self, exc: CanaryError) -> list[Evidence]:
        """The failed request, the service's answer and its log, as an auditor quotes them."""
        logs = fold_repeats(self._settled_logs(tail=10 * LOG_TAIL))[-LOG_TAIL:]
        return [
            Evidence("Canary write request", exc.request, "command"),
            Evidence("Response", exc.response, "output"),
            Evidence(f"Last {len(logs)} log lines", "\n".join(logs) or "(no output)", "log"),
        ]


def _went_wrong(cycle: Cycle) -> bool:
    """Whether a step of the cycle failed (and a removal may be the cause)."""
    states = [s for s in (cycle.before, cycle.after) if s is not None]
    return bool(
        cycle.failure
        or cycle.blocked
        or (cycle.read_back is not None and cycle.read_back.missing)
        or any(s.error for s in states)
    )

"""One target's audit: the fresh install and the lifecycle cycles, each done once.

The suites ask for stages by name (stages.py: a registry a team's conftest adds to); a stage
runs on first use and is cached, so checks can be run in any order or alone. Stages record
what they did as evidence, in the order it happened. Every database the config declares is
snapshotted at each point, all in one pause of the container.
"""

from __future__ import annotations

import functools
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import TypeVar

from docker import DockerClient
from docker.errors import DockerException

from persistaudit import (
    activity,
    canary,
    cleanup,
    engine,
    graceful_stop,
    idempotent_init,
    layer_files,
    overlap,
    retention,
    schema,
    signals,
    stages,
)
from persistaudit.canary_drivers import driver_for
from persistaudit.config import DatabaseEntry, TargetConfig
from persistaudit.exceptions import (
    CanaryError,
    DatabaseMissing,
    LimitExceeded,
    PersistauditError,
    StageError,
    TargetBlocked,
    TargetRemoved,
)
from persistaudit.findings import Evidence
from persistaudit.inspect import DatabaseFacts, inspect_snapshot
from persistaudit.manifest import Manifest, load_manifest
from persistaudit.readiness import LOG_TAIL, fold_repeats
from persistaudit.runtime import ContainerHandle, Runtime, runtime_for
from persistaudit.snapshot import Snapshot, Wanted, take_snapshots
from persistaudit.sqlite_guard import Limits


@dataclass
class DatabaseState:
    """A snapshot of one database at one point, or why none could be taken."""

    label: str
    snapshot: Snapshot | None = None
    facts: DatabaseFacts | None = None
    schema: Manifest | None = None
    error: str = ""
    # The error is a limit (size, time): the checks that need this state could not run, so
    # they are BLOCKED rather than failed.
    blocked: bool = False
    # No file at the configured path: one root-cause finding (fresh_install.database); the
    # checks that need the file could not be evaluated.
    missing: bool = False


@dataclass
class FreshInstall:
    ready_s: float | None
    blocked: TargetBlocked | None
    databases: dict[str, DatabaseState]  # by database name, in the config's order
    actions: list[Evidence] = field(default_factory=list)
    logs: list[str] = field(default_factory=list)  # the container's log when it was judged
    layer: layer_files.LayerScan | str = "not scanned"  # SQLite files in the layer, or why not

    @property
    def database(self) -> DatabaseState:
        """The first database's state (the only one of a `database:` config)."""
        return next(iter(self.databases.values()))


@dataclass
class Cycle:
    """A restart or re-create: canaries written, the cycle, and what was found after it.

    before, after and retention hold one entry per database, by name; the canaries and their
    read-back belong to the cycle.
    """

    name: str
    canaries: list[canary.Canary] = field(default_factory=list)
    before: dict[str, DatabaseState] = field(default_factory=dict)
    after: dict[str, DatabaseState] = field(default_factory=dict)
    ready_s: float | None = None
    read_back: canary.ReadBack | None = None
    retention: dict[str, retention.Retention] = field(default_factory=dict)
    failure: str = ""  # the target did not come back after the cycle: a finding
    blocked: str = ""  # the cycle could not be exercised or judged, and why: no finding
    logs: list[str] = field(default_factory=list)
    actions: list[Evidence] = field(default_factory=list)
    evidence: list[Evidence] = field(default_factory=list)  # why it was blocked
    layer: layer_files.LayerScan | str = "not scanned"  # the layer just before the cycle
    # Why the canary writes proved nothing ("" when they did): only GET/HEAD, or nothing new
    # in any database after them. The read-back then cannot vouch for user data.
    hollow: str = ""


_T = TypeVar("_T")
READ_ONLY_WRITES = "Not a proof of retention: the canary writes change nothing"
READ_ONLY_EXPLAINED = (
    "Every canary write step is a GET or HEAD: no record was written through the service, so "
    "reading it back proves nothing about user data, and neither does this check's verdict. "
    "Give the canary write steps that create data (POST, PUT, PATCH), with a setup that logs "
    "in when the API needs it."
)
NOTHING_NEW = "Not a proof of retention: nothing new in the database after the canary writes"
WRITE_SETTLE_S = 2.0  # a service may commit just after it answers: look once more, this late
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
        client: DockerClient | None,
        run_id: str,
        workdir: Path,
        log: Callable[[str], None],
        runtime: Runtime | None = None,
    ) -> None:
        self.config = config
        self.run_id = run_id
        self.workdir = workdir
        self.log = log
        if runtime is None:
            if client is None:
                raise TypeError("TargetAudit needs an engine client or a runtime")
            runtime = runtime_for(config, client, run_id, log)
        self.runtime = runtime
        self.databases = {d.name: d for d in config.declared_databases}
        self._results: dict[str, object] = {}  # stage name -> its result
        self._raised: dict[str, tuple[Exception, TracebackType | None]] = {}  # what it raised
        self._raised_again: set[int] = set()  # ids of those raised to a second asker
        self._running: list[str] = []  # stages under way, to refuse one that asks for itself
        self.canaries = driver_for(config.canary)
        self._snapshots = 0
        self._latest: dict[str, DatabaseState] = {}  # each database's last snapshot
        self._manifests: dict[str, Manifest] = {}
        first = config.declared_databases[0]
        self.limits = self.limits_of(first.name)  # the first database's (a `database:` config)

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

    @property
    def manifest(self) -> Manifest:
        """The first database's manifest (the only one of a `database:` config)."""
        return self.manifest_of(next(iter(self.databases)))

    def manifest_of(self, database: str) -> Manifest:
        """The expected schema of one database, loaded once."""
        if database not in self._manifests:
            self._manifests[database] = load_manifest(self.databases[database].manifest)
        return self._manifests[database]

    def limits_of(self, database: str) -> Limits:
        """The limits on examining copies of one database (its query_timeout)."""
        return Limits(query_timeout=self.databases[database].query_timeout)

    def stage(self, name: str) -> object:
        """The result of the stage called name, run now if it has not run yet.

        A stage runs once, also when it raised: what it raised is raised again to every later
        ask. Running it again would start another container for each check that needs it,
        and an engine that failed the stage (refusing connections, out of disk) fails it
        again: 15 checks over a refusing engine took two minutes and 15 containers to say
        the same thing. An interrupt is not kept: it stops the run.
        """
        if name in self._results:
            return self._results[name]
        if name in self._raised:
            exc, trace = self._raised[name]
            self._raised_again.add(id(exc))
            raise exc.with_traceback(trace)  # from where it was raised, not grown by each ask
        spec = stages.get(name)
        if name in self._running:
            raise StageError(f"stage {name!r} asks for itself (through {', '.join(self._running)})")
        self._running.append(name)
        try:
            with activity.during("stage", name):
                result = spec.run(self)
        except Exception as exc:
            self._raised[name] = (exc, exc.__traceback__)
            raise
        finally:
            self._running.remove(name)
        self._results[name] = result
        return result

    def raised_again(self, exc: BaseException) -> bool:
        """Whether exc is a stage's exception raised again (stage()): a check that got it
        was stopped by what an earlier check already saw happen."""
        return id(exc) in self._raised_again

    def _typed_stage(self, name: str, kind: type[_T]) -> _T:
        result = self.stage(name)
        if not isinstance(result, kind):
            raise StageError(
                f"stage {name!r} returned a {type(result).__name__}, not a {kind.__name__}: "
                "a stage registered in its place must return what the bundled one does"
            )
        return result

    @property
    def fresh(self) -> FreshInstall:
        """The fresh install stage: started on an empty volume, every database snapshotted."""
        return self._typed_stage("fresh", FreshInstall)

    @property
    def restart_cycle(self) -> Cycle:
        return self._typed_stage("restart", Cycle)

    @property
    def recreate_cycle(self) -> Cycle:
        return self._typed_stage("recreate", Cycle)

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

    def keep(self) -> list[cleanup.Resource]:
        """Leave the target's containers, volumes and networks as they are (--keep), and
        remove only the host copies of its database; returns what is left running.

        What is left is found by the run's label, which every resource it created carries.
        """
        with signals.shielded():
            shutil.rmtree(self.workdir, ignore_errors=True)
            client = getattr(self.runtime, "client", None)
            if client is None:  # a runtime without an engine (a fake) leaves nothing
                return []
            return cleanup.list_resources(client, label=f"{engine.LABEL_RUN}={self.run_id}")

    def snapshot(
        self,
        label: str,
        container: ContainerHandle | None = None,
        *,
        copied: Callable[[], None] = lambda: None,
    ) -> dict[str, DatabaseState]:
        """Copy every database out of the running container, in one pause, and inspect each.

        container: another one than the target's (a stage's own, e.g. the upgrade's); its
        databases are not the target's latest state. A container removed meanwhile raises
        TargetRemoved: that is not a missing database. copied is called once the container
        is unpaused again (also when the copy failed), before the copies are inspected.
        """
        self._snapshots += 1
        folder = self.workdir / f"{self._snapshots:02d}-{label}"
        entries = list(self.databases.values())
        try:
            copies = take_snapshots(
                container or self.runtime.container,
                [Wanted(d.path, folder / d.name, d.max_size) for d in entries],
            )
        finally:
            copied()
        states = {
            d.name: self._inspect(label, d, copy) for d, copy in zip(entries, copies, strict=True)
        }
        if container is None:
            self._latest.update(states)
        return states

    def _inspect(
        self, label: str, database: DatabaseEntry, copy: Snapshot | PersistauditError
    ) -> DatabaseState:
        state = DatabaseState(label)
        limits = self.limits_of(database.name)
        try:
            if isinstance(copy, PersistauditError):
                raise copy
            state.snapshot = copy
            last = self._latest.get(database.name)  # byte-identical copies are read once
            state.facts = facts = inspect_snapshot(copy, limits, last.facts if last else None)
            if facts.reused:
                self.log(
                    f"snapshot {label}: {len(facts.reused)} of {len(facts.data)} tables of "
                    f"{database.name} have the pages they had before; their rows are not read"
                )
            state.schema = schema.from_copy(copy.path, self.config.name, limits)
        except TargetRemoved:
            raise
        except LimitExceeded as exc:
            state.error, state.blocked = str(exc), True
        except DatabaseMissing as exc:
            state.error, state.missing = str(exc), True
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

    def run_fresh(self) -> FreshInstall:
        """The fresh install: start on an empty volume, snapshot every database once ready."""
        self.log(f"fresh install of {self.config.name} on an empty volume")
        try:
            ready_s = self.runtime.start()
            self.log(f"ready in {ready_s:.1f} s; snapshotting the database")
            # Listing the layer (docker diff) takes as long as a restart on some engines; it
            # neither reads nor changes the database, so it runs while the copy is taken (and
            # reads its candidates once the container is unpaused).
            copied = threading.Event()
            scan = functools.partial(self.scan_layer, "after the fresh install", copied.wait)
            with overlap.beside(scan) as layer, overlap.releasing(copied):
                databases = self.snapshot("fresh", copied=copied.set)
                scanned = layer()
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
        if any(d.error for d in databases.values()):
            removed = self.removed("the fresh install", settle=True)
            if removed is not None:
                return self._fresh_blocked(removed)
        return FreshInstall(
            ready_s,
            None,
            databases,
            self._start_actions(None),
            self._logs(),
            scanned,
        )

    def scan_layer(
        self, when: str, before_reading: Callable[[], object] = lambda: None
    ) -> layer_files.LayerScan | str:
        """The SQLite files in the container's layer, or why the engine could not list them.
        before_reading: see layer_files.scan."""
        try:
            return layer_files.scan(self.runtime.container, when, before_reading=before_reading)
        except (TargetRemoved, DockerException) as exc:
            return f"the container layer could not be listed {when}: {exc}"

    def _fresh_blocked(self, blocked: TargetBlocked) -> FreshInstall:
        empty = {name: DatabaseState("fresh") for name in self.databases}
        return FreshInstall(None, blocked, empty, self._start_actions(blocked), self._logs())

    def _logs(self, tail: int = 2000) -> list[str]:
        try:
            return self.runtime.container.logs(tail=tail)
        except RuntimeError:
            return []  # no container was ever created

    def _start_actions(self, blocked: TargetBlocked | None) -> list[Evidence]:
        cmd = self.runtime.step_command("start")
        outcome = f"blocked: {blocked}" if blocked else "ready"
        return [Evidence("Start on a fresh volume", f"$ {cmd}\n# {outcome}", "command")]

    def run_restart(self) -> Cycle:
        return self.cycle("restart", self.runtime.restart, self.runtime.step_command("restart"))

    def run_recreate(self) -> Cycle:
        return self.cycle(
            "recreate",
            self.runtime.recreate,
            self.runtime.step_command("recreate"),
            scan_layer=True,
        )

    def cycle(
        self,
        name: str,
        action: Callable[[], float],
        command: str,
        *,
        scan_layer: bool = False,
    ) -> Cycle:
        """Write the stage name's canaries, run the cycle, read them back; BLOCKED if the target
        vanished. For a team's own stage too: name is the stage's, whose canary block is used.

        scan_layer: list the SQLite files in the container layer just before the action (what
        a re-create is about to lose).
        """
        cycle = Cycle(name)
        try:
            self._exercise(cycle, action, command, scan_layer)
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

    def _exercise(
        self, cycle: Cycle, action: Callable[[], float], command: str, scan_layer: bool
    ) -> None:
        name = cycle.name
        spec = self.config.canary
        self.log(f"{name}: writing {spec.records} canary records through the service")
        start = stages.get(name).canary_start
        baseline = dict(self._latest)  # what the databases held before this cycle's writes
        try:
            new = self.canaries.write(self.runtime.container, self.run_id, start)
        except CanaryError as exc:
            # Nothing was restarted yet: the cycle was not exercised, so it proves nothing.
            cycle.blocked = f"the {name} cycle could not be exercised: {exc}"
            cycle.evidence = self.canary_evidence(exc)
            self.log(f"BLOCKED: {cycle.blocked}")
            return
        cycle.canaries = new
        cycle.actions.append(
            Evidence(
                f"Write {len(new)} canary records",
                f"{self.canaries.describe(new)} "
                f"(markers {new[0].marker} .. {new[-1].marker}; this cycle's own)",
                "command",
            )
        )
        if spec.changes_nothing:
            cycle.hollow = "the canary writes change nothing (GET/HEAD only)"
            cycle.actions.append(Evidence(READ_ONLY_WRITES, READ_ONLY_EXPLAINED))
        # What the cycle is about to lose, listed while the snapshot before it is taken.
        copied = threading.Event()
        scan = (
            functools.partial(self.scan_layer, f"before the {name}", copied.wait)
            if scan_layer
            else _not_scanned
        )
        with overlap.beside(scan) as layer, overlap.releasing(copied):
            cycle.before = self.snapshot(f"before-{name}", copied=copied.set)
            suspect = not spec.changes_nothing and unchanged(baseline, cycle.before)
            cycle.layer = layer()
        if suspect:  # no scan under way: the pause below is the only thing the engine does
            time.sleep(WRITE_SETTLE_S)
            cycle.before = self.snapshot(f"before-{name}-again")
            if unchanged(baseline, cycle.before):
                self._note_nothing_new(cycle, baseline)
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
        for db, before in cycle.before.items():
            compared = self.compare_rows(db, before, cycle.after[db])
            if compared is not None:
                cycle.retention[db] = compared

    def compare_rows(
        self, database: str, before: DatabaseState, after: DatabaseState
    ) -> retention.Retention | None:
        """The rows of one database before, matched after (by its table kinds and limits);
        None when either snapshot could not be read."""
        if not (before.facts and after.facts and before.snapshot and after.snapshot):
            return None
        entry = self.databases[database]
        return retention.compare_copies(
            before.snapshot.path,
            after.snapshot.path,
            before.facts,
            after.facts,
            retention.TableKinds(entry.volatile, entry.append_only, entry.immutable),
            self.limits_of(database),
        )

    def _note_nothing_new(self, cycle: Cycle, baseline: dict[str, DatabaseState]) -> None:
        where = ", ".join(f"{self.databases[db].path} ({db})" for db in cycle.before)
        cycle.hollow = (
            f"nothing new was found in the database after the {len(cycle.canaries)} canary "
            f"writes ({where})"
        )
        labels = sorted({s.label for s in baseline.values()})
        cycle.actions.append(
            Evidence(
                NOTHING_NEW,
                f"Every table of {where} held the same rows after the writes (and again "
                f"{WRITE_SETTLE_S:g} s later) as at the snapshot '{', '.join(labels)}' before "
                "them: the writes did not reach the audited database. They went elsewhere (an "
                "endpoint that stores nothing, another database) or are held in memory, so "
                "reading them back proves nothing about the database's data. Give the canary "
                "write steps that create records in it.",
            )
        )
        self.log(f"{cycle.name}: {cycle.hollow}")

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

    def canary_evidence(self, exc: CanaryError) -> list[Evidence]:
        """The failed request, the service's answer and its log, as an auditor quotes them."""
        logs = fold_repeats(self._settled_logs(tail=10 * LOG_TAIL))[-LOG_TAIL:]
        return [
            Evidence("Canary write request", exc.request, "command"),
            Evidence("Response", exc.response, "output"),
            Evidence(f"Last {len(logs)} log lines", "\n".join(logs) or "(no output)", "log"),
        ]


def unchanged(before: dict[str, DatabaseState], after: dict[str, DatabaseState]) -> bool:
    """Whether every database is known to hold exactly what it held before (never a guess:
    any database whose content is unknown on either side makes it False)."""
    if not after or set(before) != set(after):
        return False
    return all(_same_content(before[name], state) for name, state in after.items())


def _same_content(before: DatabaseState, after: DatabaseState) -> bool:
    """The same tables with the same rows: byte-identical copies, or per table the same
    pages (btree_pages) or the same row digests, read only for the tables whose pages moved."""
    old, new = before.facts, after.facts
    if old is None or new is None or before.error or after.error or old.tables != new.tables:
        return False
    if old.fingerprint and old.fingerprint == new.fingerprint:
        return True  # byte-identical copies
    for name in old.tables:
        pages = old.page_digests.get(name)
        if pages is not None and new.page_digests.get(name) == pages:
            continue
        a, b = old.data[name], new.data[name]
        if a.error or b.error or (a.rows, a.digest) != (b.rows, b.digest):
            return False
    return True


def _not_scanned() -> layer_files.LayerScan | str:
    return "not scanned"


def _went_wrong(cycle: Cycle) -> bool:
    """Whether a step of the cycle failed (and a removal may be the cause)."""
    states = [*cycle.before.values(), *cycle.after.values()]
    return bool(
        cycle.failure
        or cycle.blocked
        or (cycle.read_back is not None and cycle.read_back.missing)
        or any(s.error for s in states)
    )


stages.register("fresh", TargetAudit.run_fresh)
stages.register("restart", TargetAudit.run_restart)
stages.register("recreate", TargetAudit.run_recreate)
stages.register("graceful_stop", graceful_stop.run)
stages.register("idempotent_init", idempotent_init.run)

"""The pytest plugin: options, fixtures and hooks; what the checks found is the collector's.

Registered through the pytest11 entry point, it changes nothing in a run without a target:
no signal handlers, no environment, no output folder, and check-marked tests are skipped.
The target is the value of the persistaudit_config fixture: the config given by
--persistaudit-config, or the one a conftest builds by overriding the fixture. Each suite test
carries @pytest.mark.check("suite.check") and records its evidence and metrics through the
persistaudit_check fixture. A check about one database asks for persistaudit_database: with
more than one database it is parametrized at collection (one test and one result per database,
`suite.check[name]`), so -k, JUnit, the report and waivers see each database on its own.
"""

from __future__ import annotations

import contextlib
import dataclasses
import threading
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

import pytest

from persistaudit import (
    backup_stage,
    catalog,
    crash,
    engine,
    hooks,
    keep,
    outputs,
    progress,
    report,
    selection,
    signals,
    upgrade,
)
from persistaudit.audit import TargetAudit
from persistaudit.collector import AuditBlocked, CheckRecorder, ResultCollector, now
from persistaudit.config import DatabaseEntry, TargetConfig, load_config
from persistaudit.exceptions import ConfigError, PersistauditError
from persistaudit.findings import EXIT_CODES
from persistaudit.progress import Progress
from persistaudit.redact import Redactor
from persistaudit.resources import bundled

__all__ = ["AuditBlocked", "AuditSession", "CheckRecorder"]
# Stages that live in modules of their own register when imported: here, so that a team's
# tests can ask for them (audit.stage("crash")) without importing a suite.
STAGE_MODULES = (backup_stage, crash, upgrade)

NO_TARGET = (
    "no target config for the persistaudit checks: pass --persistaudit-config CONFIG "
    "(or override the persistaudit_config fixture in a conftest)"
)

_recorder_key = pytest.StashKey[CheckRecorder]()


class AuditSession:
    """Per pytest session: the output folder, the signal handlers, the audit and its results.

    Inert until a target is known. With --persistaudit-config the output folder and the
    signal handlers are taken at configure (a busy folder stops the run at once). The results
    start when the first check needs the persistaudit_config fixture's value: the loaded
    config, unless a conftest overrides the fixture.
    """

    def __init__(self, config: pytest.Config) -> None:
        self.pytest_config = config
        out = config.getoption("persistaudit_out", None)
        self.out = Path(out) if out else None
        path = config.getoption("persistaudit_config", None)
        capman = config.pluginmanager.getplugin("capturemanager")

        def write(emit: Any) -> None:
            if capman is not None:
                with capman.global_and_fixture_disabled():
                    emit()
            else:
                emit()

        # The CLI's progress (on the real terminal, perhaps a live status), else plain lines.
        self.progress = progress.installed() or Progress(Redactor({}), writer=write)
        self.keep = bool(config.getoption("persistaudit_keep", False))
        self.total = 0  # checks to run, after -k
        self.collector: ResultCollector | None = None
        self.audit: TargetAudit | None = None
        self.order: list[str] = []  # check ids in run order, before -k deselects any
        self.left_out: list[str] = []  # check ids deselected (-k, -m)
        self.other_failures = 0  # tests without a check id that failed in the same session
        # Checks that failed before they asked for the target (a fixture of their own broke),
        # recorded once the target is known.
        self.early: list[tuple[CheckRecorder, Any, float]] = []
        self.started_at = now()
        self.active = False  # the output folder and the signal handlers are ours
        self.held = contextlib.ExitStack()  # the output folder's lock, signal handlers
        self.loaded: TargetConfig | None = None  # from --persistaudit-config
        if path:
            try:
                self.loaded = load_config(path)
                self.progress.redactor = self._redactor(self.loaded)
                self.hold()
            except PersistauditError as exc:
                raise pytest.UsageError(str(exc)) from None

    @property
    def target(self) -> TargetConfig:
        """The audited config (the persistaudit_config fixture's value)."""
        return self._collector().target

    def _collector(self) -> ResultCollector:
        if self.collector is None:
            raise RuntimeError("no check has asked for the target yet")
        return self.collector

    def _redactor(self, target: TargetConfig) -> Redactor:
        redactor = Redactor.for_target(target)
        for warning in redactor.warnings:
            self.progress.line(f"warning: {warning}")
        return redactor

    def hold(self) -> None:
        """Lock the output folder and handle signals, once (OutputBusy when it is taken)."""
        if self.active:
            return
        if self.out is not None:
            self.held.enter_context(outputs.hold(self.out))
        if not signals.installed():  # plain pytest: the CLI installs them itself
            signals.reset()
            self.held.callback(signals.restore, signals.install())
        self.active = True

    def start(self, target: TargetConfig) -> ResultCollector:
        """The results of the audit of target, created on first use (one target per session)."""
        if self.collector is not None:
            if target is not self.collector.target:
                raise ConfigError(
                    f"the persistaudit_config fixture gave target {target.name!r} after this "
                    f"run started auditing {self.collector.target.name!r}: one pytest run "
                    "audits one target (override the fixture in one conftest only)"
                )
            return self.collector
        try:
            self.hold()
        except PersistauditError as exc:
            self.progress.line(f"error: {exc}")
            pytest.exit(str(exc), returncode=pytest.ExitCode.USAGE_ERROR)
        if target is not self.loaded:
            self.progress.redactor = self._redactor(target)
        self.collector = ResultCollector(
            target,
            self.progress,
            self.progress.redactor,
            from_file=target is self.loaded,
            order=self.order,
            started_at=self.started_at,
        )
        for check_id in self.left_out:
            self.collector.not_selected(check_id)
        for early in self.early:
            self.collector.record(*early, None)
        return self.collector

    def open_audit(self) -> TargetAudit:
        collector = self._collector()
        if self.out is not None:  # the report's template compiles while the target starts
            threading.Thread(
                target=_compile_report, name="persistaudit-report", daemon=True
            ).start()
        client = engine.connect()
        collector.engine_info = engine.Engine.describe(client).__dict__
        with signals.shielded(resume=True):  # kept (for close_audit) before an interrupt lands
            self.audit = TargetAudit.create(collector.target, client, self.progress.line)
        return self.audit

    def close_audit(self) -> None:
        """Describe the target for the report, then remove what it created; once only.

        Shielded, and complete even when the engine fails to describe the target. After an
        interrupt nothing is described: no report is written, and the run's connection may
        have been cut off mid-request.
        """
        with signals.shielded():
            audit, self.audit = self.audit, None
            if audit is None:
                return
            try:
                if signals.received() is None and self.collector is not None:
                    runtime = audit.runtime
                    self.collector.target_info = dataclasses.asdict(runtime.describe())
                    self.collector.container_settings = runtime.container_settings()
                    self.collector.commands = {  # each step names the container it ran on
                        step: runtime.step_command(step).replace("{name}", "CONTAINER")
                        for step in ("start", "restart", "recreate")
                    }
            finally:
                if self.keep and signals.received() is None:
                    self._keep(audit)
                else:
                    audit.close()  # also with --keep after an interrupt: no verdict, no debugging

    def _keep(self, audit: TargetAudit) -> None:
        """--keep: leave the target's containers and volumes, record them as kept, say how
        to remove them."""
        resources = audit.keep()
        try:
            keep.record(audit.run_id, audit.config.name, resources)
        except OSError as exc:
            self.progress.line(
                f"warning: could not record run {audit.run_id} as kept ({exc.strerror}): "
                "`persistaudit clean` may remove its resources"
            )
        kept = keep.kept_here()[-1]
        what = ", ".join(map(str, resources)) or "nothing was left"
        self.progress.line(f"kept for debugging (--keep): {what}")
        self.progress.line(f"remove with: {'; or '.join(kept.remove_commands())}")

    # -- hooks -------------------------------------------------------------------------------

    @pytest.hookimpl(tryfirst=True)
    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        if not any(_check_id(i) for i in items):
            return  # a run without checks keeps its order

        # A suite the config switches off is not collected: the report lists it as not tested
        # (a residual risk), as for a suite that does not exist. With a config given by a
        # fixture, each such check skips itself instead (persistaudit_started).
        if self.loaded is not None:
            suites = self.loaded.suites
            items[:] = [i for i in items if suites.enabled(_check_id(i) or "")]

        # The catalog's order (stable): a check it does not know runs after its suite's known
        # ones, a test without a check id last, each in file order.
        items.sort(key=lambda item: catalog.rank(_check_id(item)))
        self.order[:] = [c for c in map(_check_id, items) if c]  # before -k deselects any

    def pytest_deselected(self, items: list[pytest.Item]) -> None:
        """Checks left out (-k, -m) are recorded, so a verdict says what it did not cover."""
        for check_id in filter(None, map(_check_id, items)):
            self.left_out.append(check_id)
            if self.collector is not None:
                self.collector.not_selected(check_id)

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(
        self, item: pytest.Item, call: pytest.CallInfo[None]
    ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
        report = yield
        check_id = _check_id(item)
        if not check_id:
            self.other_failures += report.failed
            return report
        if call.when == "call" or (call.when == "setup" and report.outcome != "passed"):
            recorder = item.stash.get(_recorder_key, None) or CheckRecorder(check_id)
            if self.collector is not None:
                self.collector.record(recorder, call.excinfo, call.duration, self.audit)
            elif report.failed:  # not skipped for want of a target: it broke before asking
                self.early.append((recorder, call.excinfo, call.duration))
        return report

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        self.total = sum(1 for item in session.items if _check_id(item))

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_setup(self, item: pytest.Item) -> None:
        if self.active:
            signals.check()  # an interrupt swallowed inside a check still stops the session
        check_id = _check_id(item)
        if check_id and check_id in self.order:
            done = sum(
                1 for c in self.order[: self.order.index(check_id)] if c not in self.left_out
            )
            self.progress.check(check_id, done + 1, self.total)

    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        self.close_audit()  # already done by the fixture, unless the session was cut short
        if not self.active:
            return
        if exitstatus == pytest.ExitCode.INTERRUPTED or signals.received() is not None:
            # A partial audit must not read as a verdict: nothing is written.
            self.progress.line("interrupted: cleanup done, no results written")
            return
        if self.collector is None and self.early and self.loaded is not None:
            self.start(self.loaded)  # no check got as far as asking for the target
        collector = self.collector
        if collector is None or not collector.any_ran():
            return
        doc = collector.document()
        if self.out is not None:
            if not collector.write(self.out, doc):
                self.progress.line("interrupted: cleanup done, no results written")
                return
            verdict = selection.verdict_text(doc)
            self.progress.line(f"verdict {verdict}; report: {self.out / 'report.md'}")
        if exitstatus in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED):
            # The verdict's exit code, as from `persistaudit run`; pytest's own codes (usage
            # error, internal error, no tests) are left as they are. A failed test of the
            # session's own, without a check id, is a failure like a FAIL.
            session.exitstatus = 1 if self.other_failures else EXIT_CODES[doc["verdict"]]

    def pytest_unconfigure(self) -> None:
        self.held.close()
        if signals.received() is not None:
            signals.forget_caught_interrupt()  # exit with 128 + N, not by SIGINT


DATABASE_FIXTURE = "persistaudit_database"


def _compile_report() -> None:
    """report.prepare(), in the background: a template that does not compile fails again when
    the report is written, and is reported there as the run reports any error."""
    with contextlib.suppress(Exception):
        report.prepare()


def _check_id(item: pytest.Item) -> str:
    """The result id of a check's test: `suite.check`, or `suite.check[name]` for one database
    of several."""
    marker = item.get_closest_marker("check")
    if not (marker and marker.args):
        return ""
    callspec = getattr(item, "callspec", None)
    database = callspec.params.get(DATABASE_FIXTURE) if callspec is not None else None
    return f"{marker.args[0]}[{database}]" if database else str(marker.args[0])


def database_names(config: pytest.Config) -> list[str] | None:
    """The databases the per-database checks are collected for: those of
    --persistaudit-config, or as the pytest_persistaudit_databases hook names them."""
    loaded = config.stash[_session_key].loaded
    if loaded is not None:
        return [d.name for d in loaded.declared_databases]
    names = config.hook.pytest_persistaudit_databases(config=config)
    return list(names) if names is not None else None


# -- pytest hooks and fixtures ---------------------------------------------------------------


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("persistaudit", "persistence audits of SQLite services")
    group.addoption(
        "--persistaudit-config",
        metavar="CONFIG",
        help="target config (YAML) the audit suites run against",
    )
    group.addoption(
        "--persistaudit-out",
        metavar="DIR",
        help="write results.json and report.md to this folder",
    )
    group.addoption(
        "--persistaudit-bundled",
        action="store_true",
        help="also collect persistaudit's bundled suites (from the installed package)",
    )
    group.addoption(
        "--persistaudit-keep",
        action="store_true",
        help="keep the target's containers and volumes after the audit, for debugging",
    )


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    pluginmanager.add_hookspecs(hooks)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """One test per database for checks that ask for persistaudit_database, when there are
    several (with one, ids stay plain: `fresh_install.schema`)."""
    if DATABASE_FIXTURE not in metafunc.fixturenames:
        return
    names = database_names(metafunc.config)
    if names is not None and len(names) > 1:
        metafunc.parametrize(DATABASE_FIXTURE, names, indirect=True, ids=names)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "check(id): the stable persistaudit check id (suite.check)")
    if config.getoption("persistaudit_bundled", False):
        # A pip install has no suites/ folder to name: the installed package's, beside the
        # team's own checks (collection reads config.args after configure).
        config.args.append(str(bundled("suites")))
    session = AuditSession(config)
    config.stash[_session_key] = session
    config.pluginmanager.register(session, "persistaudit-session")


_session_key = pytest.StashKey[AuditSession]()


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    """An interrupted audit exits as a shell reports a signal: 128 + its number (130, 143)."""
    state = session.config.stash.get(_session_key, None)
    if state is not None and state.active and signals.received() is not None:
        session.exitstatus = signals.exit_code()


@pytest.fixture(scope="session")
def persistaudit_config(pytestconfig: pytest.Config) -> TargetConfig:
    """The validated target config from --persistaudit-config; without one, checks skip.

    Override it in a conftest to build the target in code: the audit, waivers and redaction
    use this fixture's value (also when --persistaudit-config is given).
    """
    loaded = pytestconfig.stash[_session_key].loaded
    if loaded is None:
        pytest.skip(NO_TARGET)
    return loaded


@pytest.fixture(scope="session")
def persistaudit_session(
    pytestconfig: pytest.Config, persistaudit_config: TargetConfig
) -> AuditSession:
    """The audit session of this pytest run (target, results collected so far)."""
    session = pytestconfig.stash[_session_key]
    session.start(persistaudit_config)
    return session


@pytest.fixture(autouse=True)
def _persistaudit_target(request: pytest.FixtureRequest) -> None:
    """A check-marked test needs a target (it is skipped without one); others are left alone."""
    if _check_id(request.node):
        session = request.getfixturevalue("persistaudit_session")
        # Where another conftest overrides the config, it is not the session's: refused.
        session.start(request.getfixturevalue("persistaudit_config"))


@pytest.fixture(scope="session")
def persistaudit_audit(persistaudit_session: AuditSession) -> Iterator[TargetAudit]:
    """The target's audit: the fresh install happens on first use; cleanup at session end."""
    try:
        audit = persistaudit_session.open_audit()
    except PersistauditError as exc:
        persistaudit_session.progress.line(f"error: {exc}")  # `persistaudit run` hides pytest's
        pytest.exit(str(exc), returncode=pytest.ExitCode.USAGE_ERROR)
    try:
        yield audit
    finally:
        persistaudit_session.close_audit()


@pytest.fixture
def persistaudit_check(request: pytest.FixtureRequest) -> CheckRecorder:
    """The recorder of the current check's summary, evidence and metrics."""
    check_id = _check_id(request.node)
    if not check_id:
        raise pytest.UsageError(f"{request.node.nodeid}: mark it with @pytest.mark.check(id)")
    recorder = CheckRecorder(check_id)
    request.node.stash[_recorder_key] = recorder
    return recorder


@pytest.fixture
def persistaudit_database(
    request: pytest.FixtureRequest, persistaudit_config: TargetConfig
) -> DatabaseEntry:
    """The database this check is about: its parameter, or the config's only database.

    The databases the checks were collected for must be the config's: a database the run
    would leave unchecked stops it (exit 2) rather than pass unexamined.
    """
    declared = {d.name: d for d in persistaudit_config.declared_databases}
    collected = database_names(request.config)
    name = getattr(request, "param", None)
    hint = (
        "Hint: a conftest that overrides persistaudit_config and lists several databases names "
        "them in a pytest_persistaudit_databases(config) hook, which returns their names"
    )
    if name is None and len(declared) > 1:
        pytest.exit(
            f"the config lists {len(declared)} databases ({', '.join(declared)}) but the "
            f"checks were collected for one. {hint}",
            returncode=pytest.ExitCode.USAGE_ERROR,
        )
    if name is not None and (collected is None or sorted(collected) != sorted(declared)):
        pytest.exit(
            f"the checks were collected for the databases {', '.join(collected or [])}, but the "
            f"config lists {', '.join(declared)}. {hint}",
            returncode=pytest.ExitCode.USAGE_ERROR,
        )
    return declared[name] if name is not None else next(iter(declared.values()))


@pytest.fixture
def persistaudit_started(
    persistaudit_audit: TargetAudit, persistaudit_check: CheckRecorder
) -> TargetAudit:
    """The audit, once the target is known to have started; blocks the check otherwise.

    A check of a suite the config switches off is skipped (not tested), before any start.
    """
    if not persistaudit_audit.config.suites.enabled(persistaudit_check.id):
        pytest.skip(f"not tested: switched off in the config (suites: {persistaudit_check.id})")
    fresh = persistaudit_audit.fresh
    if fresh.blocked is not None and fresh.blocked.reason == "removed":
        raise persistaudit_check.blocked(str(fresh.blocked))
    if fresh.blocked is not None:
        see = "; see " + " and ".join(catalog.gates()) if catalog.gates() else ""
        raise persistaudit_check.blocked(f"target did not start ({fresh.blocked.reason}){see}")
    return persistaudit_audit

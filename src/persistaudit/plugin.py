"""The pytest plugin: options, fixtures for audit suites, and the results they produce.

Registered through the pytest11 entry point, it stays inert unless --persistaudit-config
is given. Each suite test carries @pytest.mark.check("suite.check") and records its
evidence and metrics through the persistaudit_check fixture.
"""

from __future__ import annotations

import contextlib
import hashlib
import platform
import sqlite3
import traceback
from collections.abc import Generator, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import docker.errors
import pytest

from persistaudit import __version__, catalog, engine, outputs, signals
from persistaudit.audit import TargetAudit
from persistaudit.config import TargetConfig, load_config
from persistaudit.exceptions import PersistauditError
from persistaudit.findings import (
    EXIT_CODES,
    CheckResult,
    Evidence,
    Metric,
    Status,
    apply_waiver,
    results_document,
)
from persistaudit.outputs import EVIDENCE_DIR, safe_name, write_outputs
from persistaudit.progress import Progress
from persistaudit.redact import Redactor


class AuditBlocked(pytest.skip.Exception):  # type: ignore[name-defined,misc]
    """Raised by a check that cannot run because the target never became ready."""


class CheckRecorder:
    """What one check found: its summary, evidence and metrics."""

    def __init__(self, check_id: str) -> None:
        self.id = check_id
        self.suite = check_id.split(".")[0]
        self.summary = ""
        self.evidence: list[Evidence] = []
        self.metrics: list[Metric] = []
        self.files: dict[str, str] = {}

    def add(self, title: str, content: str, kind: str = "output") -> None:
        self.evidence.append(Evidence(title, content, kind))  # type: ignore[arg-type]

    def attach(self, name: str, content: str, title: str, excerpt: str = "") -> None:
        """A whole evidence file (evidence/NAME in the output folder), signed with the report."""
        name = safe_name(name)
        self.files[name] = content
        self.evidence.append(Evidence(title, excerpt, "output", file=f"{EVIDENCE_DIR}/{name}"))

    def table(self, title: str, columns: list[str], rows: list[list[str]]) -> None:
        """Evidence shown as a table in the report (cells are escaped when rendered)."""
        self.evidence.append(Evidence(title, "", "table", list(columns), rows))

    def extend(self, evidence: list[Evidence]) -> None:
        self.evidence.extend(evidence)

    def metric(self, name: str, target: str, achieved: str, ok: bool) -> None:
        self.metrics.append(Metric(name, target, achieved, "passed" if ok else "failed", self.id))

    def blocked(self, message: str) -> AuditBlocked:
        return AuditBlocked(message)


_recorder_key = pytest.StashKey[CheckRecorder]()


class AuditSession:
    """Per pytest session: the loaded config, the audit, and the results collected so far."""

    def __init__(self, config: pytest.Config, target: TargetConfig, out: Path | None) -> None:
        self.pytest_config = config
        self.target = target
        self.out = out
        self.redactor = Redactor.for_target(target)
        capman = config.pluginmanager.getplugin("capturemanager")

        def write(emit: Any) -> None:
            if capman is not None:
                with capman.global_and_fixture_disabled():
                    emit()
            else:
                emit()

        self.progress = Progress(self.redactor, writer=write)
        for warning in self.redactor.warnings:
            self.progress.line(f"warning: {warning}")
        self.results: dict[str, CheckResult] = {}
        self.metrics: list[Metric] = []
        self.files: dict[str, str] = {}
        self.today = datetime.now(timezone.utc).date()
        self.order: list[str] = []
        self.started_at = _now()
        self.audit: TargetAudit | None = None
        self.target_info: dict[str, Any] = {"name": target.name, "image": target.image_ref}
        self.engine_info: dict[str, Any] = {}
        self.held = contextlib.ExitStack()  # the output folder's lock, signal handlers
        if out is not None:
            try:
                self.held.enter_context(outputs.hold(out))
            except PersistauditError as exc:
                raise pytest.UsageError(str(exc)) from None
        if not signals.installed():  # plain pytest: the CLI installs them itself
            signals.reset()
            self.held.callback(signals.restore, signals.install())
        self.other_failures = 0  # tests without a check id that failed in the same session

    def open_audit(self) -> TargetAudit:
        client = engine.connect()
        self.engine_info = engine.Engine.describe(client).__dict__
        with signals.shielded(resume=True):  # kept (for close_audit) before an interrupt lands
            self.audit = TargetAudit.create(self.target, client, self.progress.line)
        return self.audit

    # -- hooks -------------------------------------------------------------------------------

    @pytest.hookimpl(tryfirst=True)
    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        # The catalog's order (stable): a check it does not know runs after its suite's known
        # ones, a test without a check id last, each in file order.
        items.sort(key=lambda item: catalog.rank(_check_id(item)))
        self.order = [c for c in map(_check_id, items) if c]  # before -k deselects any

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
            self._record(item, check_id, call, report)
        return report

    def _record(
        self, item: pytest.Item, check_id: str, call: pytest.CallInfo[None], report: Any
    ) -> None:
        recorder = item.stash.get(_recorder_key, None) or CheckRecorder(check_id)
        status, summary = self._outcome(recorder, call.excinfo)
        status, summary, waiver = apply_waiver(
            status,
            summary,
            self.target.waivers,
            check_id,
            self.today,
        )
        summary = self.redactor.text(summary)
        result = CheckResult(
            id=check_id,
            suite=recorder.suite,
            status=status,
            summary=summary,
            evidence=recorder.evidence,
            duration_s=round(call.duration, 2),
            waiver=waiver,
        )
        self.results[check_id] = result
        self.files.update(recorder.files)
        for metric in recorder.metrics:
            if status in ("blocked", "skipped", "waived", "error"):
                metric.status = status
            self.metrics.append(metric)
        self.progress.line(f"{check_id:<28} {summary}", status)

    def _outcome(
        self, recorder: CheckRecorder, excinfo: pytest.ExceptionInfo[BaseException] | None
    ) -> tuple[Status, str]:
        """passed, failed (the target's defect), blocked (could not run), or error (our bug)."""
        if excinfo is None:
            return "passed", recorder.summary or "passed"
        if excinfo.errisinstance(AuditBlocked):
            return "blocked", str(getattr(excinfo.value, "msg", excinfo.value))
        if excinfo.errisinstance(pytest.skip.Exception):
            return "skipped", str(getattr(excinfo.value, "msg", excinfo.value))
        if excinfo.errisinstance((AssertionError, pytest.fail.Exception)):
            text = getattr(excinfo.value, "msg", None) or str(excinfo.value)
            return "failed", recorder.summary or text.split("\nassert")[0].strip()
        audit = self.audit
        removed = audit.removed(f"the check {recorder.id}", settle=True) if audit else None
        if removed is not None:
            return "blocked", str(removed)
        if excinfo.errisinstance((PersistauditError, docker.errors.DockerException)):
            # The target or the engine stopped the check: the user's to resolve, not a bug.
            return "blocked", f"the check could not run: {_one_line(excinfo.value)}"
        return "error", self._internal_error(recorder, excinfo)

    def _internal_error(
        self, recorder: CheckRecorder, excinfo: pytest.ExceptionInfo[BaseException]
    ) -> str:
        """Keep the traceback as evidence (redacted when written); summarise it in one line."""
        name = safe_name(f"internal-error-{recorder.id}.txt")
        exc = excinfo.value
        trace = "".join(traceback.format_exception(type(exc), exc, excinfo.tb))
        line = _one_line(exc)
        recorder.attach(name, trace, "Traceback of the internal error in persistaudit", line)
        return (
            f"internal error in persistaudit: {line} (a bug, not a finding about the target; "
            f"traceback in {EVIDENCE_DIR}/{name})"
        )

    def pytest_deselected(self, items: list[pytest.Item]) -> None:
        """Checks left out (-k, -m) are recorded, so a verdict says what it did not cover."""
        for item in items:
            check_id = _check_id(item)
            if check_id:
                suite = check_id.split(".")[0]
                self.results[check_id] = CheckResult(
                    check_id, suite, "skipped", "not selected for this run"
                )

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
                if signals.received() is None:
                    self.target_info = audit.runtime.describe()
            finally:
                audit.close()

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_setup(self) -> None:
        signals.check()  # an interrupt swallowed inside a check still stops the session

    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        self.close_audit()  # already done by the fixture, unless the session was cut short
        if exitstatus == pytest.ExitCode.INTERRUPTED or signals.received() is not None:
            # A partial audit must not read as a verdict: nothing is written.
            self.progress.line("interrupted: cleanup done, no results written")
            return
        if not any(r.status != "skipped" for r in self.results.values()):
            return
        doc = self.document()
        if self.out is not None:
            with signals.shielded():  # complete or discarded, never cut off halfway
                write_outputs(self.out, doc, self.files, self.redactor)
            if signals.received() is not None:
                self.progress.line("interrupted: cleanup done, no results written")
                return
            self.progress.line(f"verdict {doc['verdict']}; report: {self.out / 'report.md'}")
        if exitstatus in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED):
            # The verdict's exit code, as from `persistaudit run`; pytest's own codes (usage
            # error, internal error, no tests) are left as they are. A failed test of the
            # session's own, without a check id, is a failure like a FAIL.
            session.exitstatus = 1 if self.other_failures else EXIT_CODES[doc["verdict"]]

    def pytest_unconfigure(self) -> None:
        self.held.close()
        if signals.received() is not None:
            signals.forget_caught_interrupt()  # exit with 128 + N, not by SIGINT

    def document(self) -> dict[str, Any]:
        target = {
            **self.target_info,
            "config": str(self.target.source),
            "env": self.redactor.env(self.target.env),
            "expect": {
                "manifest": self.target.expect.manifest.name,
                "journal_mode": self.target.expect.journal_mode,
            },
        }
        environment = {
            "persistaudit": __version__,
            "python": platform.python_version(),
            "sqlite": sqlite3.sqlite_version,
            "docker_engine": self.engine_info,
            "config_sha256": hashlib.sha256(self.target.source.read_bytes()).hexdigest(),
        }
        position = {c: i for i, c in enumerate(self.order)}
        checks = sorted(self.results.values(), key=lambda c: position.get(c.id, len(position)))
        doc = results_document(
            target=target,
            checks=checks,
            metrics=self.metrics,
            environment=environment,
            started_at=self.started_at,
            finished_at=_now(),
        )
        return doc  # redacted by write_outputs, with everything else it writes


def _one_line(exc: BaseException) -> str:
    """The exception's type and the first line of its message."""
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _check_id(item: pytest.Item) -> str:
    marker = item.get_closest_marker("check")
    return str(marker.args[0]) if marker and marker.args else ""


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


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "check(id): the stable persistaudit check id (suite.check)")
    path = config.getoption("persistaudit_config", None)
    if not path:
        return
    try:
        target = load_config(path)
    except PersistauditError as exc:
        raise pytest.UsageError(str(exc)) from None
    out = config.getoption("persistaudit_out", None)
    session = AuditSession(config, target, Path(out) if out else None)
    config.stash[_session_key] = session
    config.pluginmanager.register(session, "persistaudit-session")


_session_key = pytest.StashKey[AuditSession]()


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    """An interrupted audit exits as a shell reports a signal: 128 + its number (130, 143)."""
    if _session_key in session.config.stash and signals.received() is not None:
        session.exitstatus = signals.exit_code()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if _session_key not in config.stash and any(_check_id(i) for i in items):
        raise pytest.UsageError(
            "the persistaudit suites need a target: pass --persistaudit-config CONFIG "
            "(or use `persistaudit run CONFIG`)"
        )


@pytest.fixture(scope="session")
def persistaudit_session(pytestconfig: pytest.Config) -> AuditSession:
    """The audit session of this pytest run (config, results collected so far)."""
    return pytestconfig.stash[_session_key]


@pytest.fixture(scope="session")
def persistaudit_config(persistaudit_session: AuditSession) -> TargetConfig:
    """The validated target config. Override it in a conftest to build one in code."""
    return persistaudit_session.target


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
def persistaudit_started(
    persistaudit_audit: TargetAudit, persistaudit_check: CheckRecorder
) -> TargetAudit:
    """The audit, once the target is known to have started; blocks the check otherwise."""
    fresh = persistaudit_audit.fresh
    if fresh.blocked is not None and fresh.blocked.reason == "removed":
        raise persistaudit_check.blocked(str(fresh.blocked))
    if fresh.blocked is not None:
        raise persistaudit_check.blocked(
            f"target did not start ({fresh.blocked.reason}); see fresh_install.startup"
        )
    return persistaudit_audit

"""An audit's results: each check's status, waivers, redaction, the document and its outputs.

The pytest plugin hands each finished check to a ResultCollector; nothing here knows of
hooks or fixtures. The outcome of a check is mapped once, here: passed, failed (the
target's defect), blocked (could not run), skipped, waived, or error (a bug of ours).
"""

from __future__ import annotations

import hashlib
import platform
import sqlite3
import traceback
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import docker.errors
import pytest

from persistaudit import __version__, catalog, engine, relpaths, reproduce, selection, signals
from persistaudit.audit import TargetAudit
from persistaudit.config import TargetConfig
from persistaudit.exceptions import PersistauditError, summarize
from persistaudit.findings import (
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
from persistaudit.relpaths import FIXTURE_ORIGIN


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


class ResultCollector:
    """The results of one target's audit, in the order the checks were collected.

    from_file: the config is the file at target.source as loaded, so the results name that
    file and its digest; otherwise (built or changed in a fixture) they name the fixture and
    digest the validated config, since no file says what was audited.
    """

    def __init__(
        self,
        target: TargetConfig,
        progress: Progress,
        redactor: Redactor,
        *,
        from_file: bool,
        order: list[str],
        started_at: str,
    ) -> None:
        self.target = target
        self.progress = progress
        self.redactor = redactor  # the target's secrets
        self.from_file = from_file
        self.order = order
        self.started_at = started_at
        self.today = datetime.now(timezone.utc).date()
        self.results: dict[str, CheckResult] = {}
        self.deselected: set[str] = set()  # result ids left out (-k, -m, or never collected)
        self.metrics: list[Metric] = []
        self.files: dict[str, str] = {}
        self.target_info: dict[str, Any] = {"name": target.name, "image": target.image_ref}
        self.engine_info: dict[str, Any] = {}
        # The settings of the container the run last used, and its lifecycle steps as commands
        # (plugin.close_audit); empty when no container was described.
        self.container_settings: dict[str, Any] = {}
        self.commands: dict[str, str] = {}

    def record(
        self,
        recorder: CheckRecorder,
        excinfo: pytest.ExceptionInfo[BaseException] | None,
        duration: float,
        audit: TargetAudit | None,
    ) -> CheckResult:
        """The check's result, with its waiver applied and its summary redacted."""
        status, summary = self.outcome(recorder, excinfo, audit)
        status, summary, waiver = apply_waiver(
            status, summary, self.target.waivers, recorder.id, self.today
        )
        summary = self.redactor.text(summary)
        result = CheckResult(
            id=recorder.id,
            suite=recorder.suite,
            status=status,
            summary=summary,
            evidence=recorder.evidence,
            duration_s=round(duration, 2),
            waiver=waiver,
        )
        self.results[recorder.id] = result
        self.files.update(recorder.files)
        for metric in recorder.metrics:
            if status in ("blocked", "skipped", "waived", "error"):
                metric.status = status
            self.metrics.append(metric)
        self.progress.line(f"{recorder.id:<28} {summary}", status)
        return result

    def outcome(
        self,
        recorder: CheckRecorder,
        excinfo: pytest.ExceptionInfo[BaseException] | None,
        audit: TargetAudit | None,
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
        removed = None
        if audit is not None:  # an error an earlier check got (a stage's) had its settle
            settle = not audit.raised_again(excinfo.value)
            removed = audit.removed(f"the check {recorder.id}", settle=settle)
        if removed is not None:
            return "blocked", str(removed)
        stopped_by: tuple[type[BaseException], ...] = (
            PersistauditError,
            docker.errors.DockerException,
            *engine.transport_errors(),
        )
        if excinfo.errisinstance(stopped_by):
            # The target or the engine stopped the check: the user's to resolve, not a bug.
            return "blocked", f"the check could not run: {summarize(excinfo.value)}"
        return "error", self._internal_error(recorder, excinfo)

    def _internal_error(
        self, recorder: CheckRecorder, excinfo: pytest.ExceptionInfo[BaseException]
    ) -> str:
        """Keep the traceback as evidence (redacted when written); summarise it in one line."""
        name = safe_name(f"internal-error-{recorder.id}.txt")
        exc = excinfo.value
        trace = "".join(traceback.format_exception(type(exc), exc, excinfo.tb))
        line = summarize(exc)
        recorder.attach(name, trace, "Traceback of the internal error in persistaudit", line)
        return (
            f"internal error in persistaudit: {line} (a bug, not a finding about the target; "
            f"traceback in {EVIDENCE_DIR}/{name})"
        )

    def not_selected(self, check_id: str) -> None:
        """A check left out (-k, -m): a verdict says what it did not cover."""
        suite = check_id.split(".")[0]
        self.results[check_id] = CheckResult(check_id, suite, "skipped", selection.NOT_SELECTED)
        self.deselected.add(check_id)

    def any_ran(self) -> bool:
        return any(r.status != "skipped" for r in self.results.values())

    def document(self) -> dict[str, Any]:
        """The results document; redacted by write_outputs, with everything else it writes.

        Every bundled check the config switches on is listed: one this run never collected
        (a team's checks run alone) is not selected, like one that -k left out.
        """
        for check_id in selection.missing_bundled(self.results, self.target.suites.enabled):
            self.not_selected(check_id)
        source = self.target.source
        if self.from_file:
            config, digest = str(source), hashlib.sha256(source.read_bytes()).hexdigest()
        else:
            config = FIXTURE_ORIGIN
            digest = hashlib.sha256(self.target.model_dump_json().encode()).hexdigest()
        declared = self.target.declared_databases
        described = {
            ("database" if k == "databases" else k): (", ".join(v) if k == "databases" else v)
            for k, v in self.target_info.items()
        }
        target = {
            **described,
            "config": config,
            "env": self.redactor.env(self.target.env),
            "expect": {  # the first database's (the only one of a `database:` config)
                "manifest": declared[0].manifest.name,
                "journal_mode": declared[0].journal_mode,
            },
            "databases": [
                {
                    "name": d.name,
                    "path": d.path,
                    "manifest": d.manifest.name,
                    "journal_mode": d.journal_mode,
                    "persist": d.persist,
                    "volatile": list(d.volatile),
                    "append_only": list(d.append_only),
                    "immutable": list(d.immutable),
                }
                for d in declared
            ],
        }
        environment = {
            "persistaudit": __version__,
            "python": platform.python_version(),
            "sqlite": sqlite3.sqlite_version,
            "docker_engine": self.engine_info,
            "config_sha256": digest,
        }
        settings = dict(self.container_settings)
        if settings:
            settings["env"] = self.redactor.env(settings["env"])
        reproduce_section = {
            "container": settings,
            # A compose service is reproduced by its compose commands, not one docker run.
            "run_command": reproduce.run_command(settings) if self.target.compose is None else "",
            "commands": self.commands,
            "readiness": reproduce.readiness(self.target.readiness),
            "canary": reproduce.scenario(self.target.canary),
        }
        # The catalog's order, then the order the checks ran in (the same as the run's for the
        # checks it collected; a bundled check it never collected takes its catalog place).
        position = {c: i for i, c in enumerate(self.order)}
        checks = sorted(
            self.results.values(),
            key=lambda c: (catalog.rank(c.id), position.get(c.id, len(position))),
        )
        doc = results_document(
            target=target,
            reproduce=reproduce_section,
            checks=checks,
            metrics=self.metrics,
            environment=environment,
            started_at=self.started_at,
            finished_at=now(),
        )
        doc["coverage"] = selection.coverage(doc["checks"], self.deselected)
        return doc

    def write(self, out: Path, doc: dict[str, Any]) -> bool:
        """Write the outputs whole; False when an interrupt came meanwhile (nothing published)."""
        doc = relpaths.relative(doc, out)  # no path of this machine in what is written
        with signals.shielded():  # complete or discarded, never cut off halfway
            write_outputs(out, doc, self.files, self.redactor)
        return signals.received() is None


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")

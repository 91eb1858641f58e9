"""Check results, metrics and the audit's verdict: the plain data every output is made from."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import date
from typing import Any, Literal

Status = Literal["passed", "failed", "blocked", "skipped", "waived", "error"]
Verdict = Literal["PASS", "FAIL", "BLOCKED", "ERROR"]
RESULTS_SCHEMA = "persistaudit/results/v1"


def apply_waiver(
    status: Status, summary: str, waivers: list[Any], check_id: str, today: date
) -> tuple[Status, str, dict[str, str] | None]:
    """A failed check with a waiver is WAIVED until the waiver's date, and failed after it.

    A waiver for `check[name]` covers that database's result; one for `check` covers every
    database's (the one for the database wins when both are given).
    """
    base = check_id.split("[", 1)[0]
    waiver = next((w for w in waivers if w.check == check_id), None) or next(
        (w for w in waivers if w.check == base), None
    )
    if waiver is None or status != "failed":
        return status, summary, None
    info = {
        "justification": waiver.justification,
        "accepted_by": waiver.accepted_by,
        "expires": waiver.expires.isoformat(),
    }
    if today <= waiver.expires:
        return "waived", summary, info
    info["expired"] = "true"
    return "failed", f"waiver expired on {waiver.expires.isoformat()}: {summary}", info


@dataclass
class Evidence:
    """One piece of evidence: a command or API call made and what it returned, or log lines."""

    title: str
    content: str
    kind: Literal["command", "output", "log", "table"] = "output"
    columns: list[str] = field(default_factory=list)  # with rows: shown as a table
    rows: list[list[str]] = field(default_factory=list)
    file: str = ""  # evidence file in the output folder (evidence/NAME), when there is one


@dataclass
class CheckResult:
    id: str  # dotted suite.check, stable across releases
    suite: str
    status: Status
    summary: str
    evidence: list[Evidence] = field(default_factory=list)
    duration_s: float = 0.0
    waiver: dict[str, str] | None = None  # justification, accepted_by, expires (and expired)


@dataclass
class Metric:
    name: str
    target: str
    achieved: str
    status: Status
    check: str = ""


def verdict(checks: list[CheckResult]) -> Verdict:
    """FAIL, then ERROR, then BLOCKED, then PASS: the first that any check calls for.

    FAIL first: a defect found by a check that worked is real, whatever else went wrong, and
    must stop a release. ERROR (a bug inside persistaudit) before BLOCKED: some outcomes are
    unknown, and through no fault of the target, so it must not pass for a blocker the user
    should fix. The checks list shows every error, also under a FAIL. A waived failure counts
    as passed until its waiver expires (then it is failed again).
    """
    statuses = {c.status for c in checks}
    if "failed" in statuses:
        return "FAIL"
    if "error" in statuses:
        return "ERROR"
    if "blocked" in statuses or not checks:
        return "BLOCKED"
    return "PASS"


# The CLI's exit code per verdict, and the plain pytest route's. 2 is a usage or config error,
# 128+N an interrupt by signal N.
EXIT_CODES: dict[str, int] = {"PASS": 0, "FAIL": 1, "BLOCKED": 3, "ERROR": 4}


def results_document(
    *,
    target: dict[str, Any],
    checks: list[CheckResult],
    reproduce: dict[str, Any] | None = None,
    metrics: list[Metric],
    environment: dict[str, Any],
    started_at: str,
    finished_at: str,
) -> dict[str, Any]:
    return {
        "schema": RESULTS_SCHEMA,
        "verdict": verdict(checks),
        "started_at": started_at,
        "finished_at": finished_at,
        "target": target,
        "environment": environment,
        "checks": [asdict(c) for c in checks],
        "metrics": [asdict(m) for m in metrics],
        **({"reproduce": reproduce} if reproduce is not None else {}),
    }

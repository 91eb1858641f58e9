"""What a finding means for a release: its risk, severity, mitigation and next step.

The fixed texts are each check's catalog entry (catalog.py); here they meet the check's own
findings, so the report says "put /app/state on a named volume", not "fix the volume".
"""

from __future__ import annotations

from typing import Any

from persistaudit import catalog

INTERNAL_ERROR_STEP = (
    "persistaudit failed inside this check (a bug in the tool, not a finding about the target): "
    "report it with {file}, then re-run the audit."
)
LICENCE_STEP = (
    "Set the licence variable the service asks for, or ship an evaluation mode that starts "
    "without one. The log says: {line}"
)
BLOCKED_STEP = "Resolve the blocker, then re-run the audit."
# No file at the configured path: the retention checks' canaries were lost with a database
# kept elsewhere; the next step is the root cause's.
MISSING_DATABASE_STEP = (
    "The service does not keep its database at {database} (see {root}): make it write there, "
    "on the volume, and its records will survive with it. Found: {summary}"
)
# A database already under a mount that still lost rows: "keep it under the volume" would
# contradict the finding, so the next step is to find what resets it.
ON_VOLUME_LOSS_STEP = (
    "{database} is already on the mounted volume ({mount}), yet rows were lost across the "
    "{cycle}: find what resets or replaces it when the service starts (an init that recreates "
    "the file, a migration that rebuilds tables, a second copy the service really uses). "
    "Found: {summary}"
)
RERUN_STEP = "Re-run this audit for every release and compare results with `persistaudit compare`."
# Statuses after which a suite's checks have tested what they cover (for residual risks).
TESTED = frozenset({"passed", "failed", "waived"})


def risk(check: dict[str, Any]) -> tuple[str, str, str]:
    """(risk, severity, mitigation). A failed check leaves its risk; a blocked or errored one,
    unverified."""
    entry = catalog.lookup(check["id"])
    text, severity, mitigation = (
        (entry.risk, entry.severity, entry.mitigation) if entry else catalog.UNCLASSIFIED
    )
    if check["status"] == "error":
        return f"Unverified: {text}", severity, recommendation(check, {})
    if check["status"] == "blocked" and not catalog.is_gate(check["id"]):
        return f"Unverified: {text}", severity, BLOCKED_STEP
    return text, severity, mitigation


def _first(lines: list[str], word: str) -> str:
    return next((line for line in lines if word in line.lower()), "")


def recommendation(check: dict[str, Any], target: dict[str, Any]) -> str:
    """A concrete next step for a failed, blocked, errored or waived check, from its findings."""
    cid, summary = check["id"], check["summary"]
    if check["status"] == "error":
        files = [e["file"] for e in check["evidence"] if e.get("file")]
        return INTERNAL_ERROR_STEP.format(file=files[-1] if files else "its traceback")
    entry = catalog.lookup(cid)
    if entry is None:
        return catalog.UNCLASSIFIED_ADVICE.format(summary=summary)
    if entry.gate:  # the target did not start: a licence check says so in its logs
        logs = [
            ln for e in check["evidence"] if e["kind"] == "log" for ln in e["content"].splitlines()
        ]
        licence = _first(logs, "licen")
        if licence:
            return LICENCE_STEP.format(line=licence.strip())
    database = str(target.get("database", "?"))
    paths = {d.get("name"): d.get("path") for d in target.get("databases", [])}
    name = cid[len(catalog.base_id(cid)) + 1 : -1] if cid.endswith("]") else ""
    if name in paths:  # one database of several: its own path
        database = str(paths[name])
    mount = str(target.get("mount", "?"))
    cycle = catalog.base_id(cid).split(".")[0]
    missing = f"no database at {database} (see "
    if cycle in ("restart", "recreate") and missing in summary:
        root = summary.split(missing, 1)[1].split(")", 1)[0]
        return MISSING_DATABASE_STEP.format(database=database, root=root, summary=summary)
    if cycle in ("restart", "recreate") and check["status"] == "failed" and _under(database, mount):
        return ON_VOLUME_LOSS_STEP.format(
            database=database,
            mount=mount,
            cycle="re-create" if cycle == "recreate" else "restart",
            summary=summary,
        )
    return entry.advice(
        {
            "summary": summary,
            "database": database,
            "folder": database.rsplit("/", 1)[0] or "/",
            "mount": str(target.get("mount", "?")),
            "journal_mode": str(target.get("expect", {}).get("journal_mode", "wal")),
        }
    )


def _under(path: str, mounts: str) -> bool:
    """Whether path lies under one of the mount points (a compose target lists several)."""
    points = [m.strip().rstrip("/") for m in mounts.split(",") if m.strip() not in ("", "?")]
    return any(path.startswith(p + "/") for p in points)


def tested_suites(checks: list[dict[str, Any]]) -> set[str]:
    """The suites at least one of whose checks tested what it covers in these results."""
    return {c["suite"] for c in checks if c["status"] in TESTED}


def residual_risks(checks: list[dict[str, Any]]) -> list[str]:
    """What this audit did not test: the catalog's gaps that no check in the results closed."""
    return [g.risk for g in catalog.gaps(tested_suites(checks))]


def untested_areas(checks: list[dict[str, Any]]) -> str:
    """The "not tested" line when every check ran: the gaps that a suite would close."""
    areas = [g.area for g in catalog.gaps(tested_suites(checks)) if g.area]
    if not areas:
        return "nothing"
    listed = areas[0] if len(areas) == 1 else f"{', '.join(areas[:-1])} and {areas[-1]}"
    return f"{listed} (no suites for them ran)"


def passing_recommendations(checks: list[dict[str, Any]]) -> list[str]:
    """Next steps whatever the verdict: close the untested gaps, and keep auditing releases."""
    gaps = catalog.gaps(tested_suites(checks))
    return [g.recommendation for g in gaps if g.recommendation] + [RERUN_STEP]

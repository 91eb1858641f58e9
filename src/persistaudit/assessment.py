"""What a finding means for a release: its risk, severity, mitigation and next step.

Fixed texts per check id, plus recommendations built from the check's own findings, so the
report says "put /app/state on a named volume", not "fix the volume".
"""

from __future__ import annotations

from typing import Any

SUITE_TITLES = {
    "fresh_install": "Fresh install",
    "volume": "Volume and mount",
    "restart": "Restart persistence",
    "recreate": "Re-create persistence",
}
SUITE_DONE = {
    "fresh_install": "The target was started on an empty named volume created for the audit. "
    "Once it was ready, it was paused, its database and sidecar files were copied out through "
    "the Docker API, and the copy was inspected on the host with SQLite.",
    "volume": "The container's mounts were read from the engine (docker inspect) and matched "
    "against the folder that holds the database.",
    "restart": "Canary records were written through the service's API, the database was "
    "snapshotted, the container was restarted (docker restart), and the records and every "
    "table's rows were compared once it was ready again.",
    "recreate": "More canary records were written, the container was stopped and removed with "
    "its volume kept, a new container was started from the same image on the same volume, "
    "and every record, row and the schema were compared.",
}
# Fixed text per check: the risk a failure leaves and what to do about it.
RISKS: dict[str, tuple[str, str, str]] = {
    "fresh_install.startup": (
        "The service cannot be deployed or validated: startup is blocked.",
        "CRITICAL",
        "Fix the cause quoted from the logs (for a licence check: set the variable, or ship an "
        "evaluation mode), then re-run the audit.",
    ),
    "fresh_install.schema": (
        "Fresh installs lack tables the release needs: features fail at first use.",
        "CRITICAL",
        "Register every migration/model in the initialisation path and keep the manifest "
        "under expected/ in step with the release.",
    ),
    "fresh_install.integrity": (
        "The database file is corrupt.",
        "CRITICAL",
        "Restore from backup; find the writer that corrupts (unsafe copies, network filesystems).",
    ),
    "fresh_install.foreign_keys": (
        "Rows point at missing parents: silent data inconsistency.",
        "HIGH",
        "Enable PRAGMA foreign_keys=ON on every connection and repair the orphaned rows.",
    ),
    "fresh_install.journal_mode": (
        "The journal mode is not the promised one: concurrency and crash behaviour differ.",
        "MEDIUM",
        "Set PRAGMA journal_mode at database creation, as the release promises.",
    ),
    "volume.mount": (
        "The database is not on persistent storage: data is lost when the container is "
        "removed or re-created.",
        "CRITICAL",
        "Put the database's folder (not the file alone) on a named volume or bind mount.",
    ),
    "restart.retention": (
        "Data written before a restart is lost or altered.",
        "CRITICAL",
        "Make sure writes are committed and the database lives on the volume.",
    ),
    "recreate.retention": (
        "Data is lost when the container is removed and re-created (upgrades, redeploys).",
        "CRITICAL",
        "Store the database under the mounted volume path; verify the path the service uses.",
    ),
}
RESIDUAL_RISKS = [
    "Backups and restores were not verified.",
    "Behaviour under load and after a crash (kill -9 during writes) was not tested.",
    "Upgrades from the previous release's database were not tested.",
    "Host filesystem and volume driver failures are outside this audit.",
]

INTERNAL_ERROR_STEP = (
    "persistaudit failed inside this check (a bug in the tool, not a finding about the target): "
    "report it with {file}, then re-run the audit."
)

PASSING_RECOMMENDATIONS = [
    "Verify that backups restore: no backup/restore suite ran in this audit.",
    "Re-run this audit for every release and compare results with `persistaudit compare`.",
]


def risk(check: dict[str, Any]) -> tuple[str, str, str]:
    """(risk, severity, mitigation). A failed check leaves its risk; a blocked or errored one,
    unverified."""
    text, severity, mitigation = RISKS.get(
        check["id"], ("Not classified.", "MEDIUM", "Investigate the finding.")
    )
    if check["status"] == "error":
        return f"Unverified: {text}", severity, recommendation(check, {})
    if check["status"] == "blocked" and check["id"] != "fresh_install.startup":
        return f"Unverified: {text}", severity, "Resolve the blocker, then re-run the audit."
    return text, severity, mitigation


def _first(lines: list[str], word: str) -> str:
    return next((line for line in lines if word in line.lower()), "")


def recommendation(check: dict[str, Any], target: dict[str, Any]) -> str:
    """A concrete next step for a failed, blocked, errored or waived check, from its findings."""
    cid, summary = check["id"], check["summary"]
    if check["status"] == "error":
        files = [e["file"] for e in check["evidence"] if e.get("file")]
        return INTERNAL_ERROR_STEP.format(file=files[-1] if files else "its traceback")
    logs = [ln for e in check["evidence"] if e["kind"] == "log" for ln in e["content"].splitlines()]
    database = str(target.get("database", "?"))
    folder = database.rsplit("/", 1)[0] or "/"
    if cid == "fresh_install.startup":
        licence = _first(logs, "licen")
        if licence:
            return (
                "Set the licence variable the service asks for, or ship an evaluation mode that "
                f"starts without one. The log says: {licence.strip()}"
            )
        return f"Fix the start failure quoted in the logs, then re-run the audit ({summary})."
    texts = {
        "fresh_install.schema": "Make the fresh-install path create the promised schema "
        "(register every migration and model); regenerate the manifest with `persistaudit "
        f"snapshot` only for intended changes. Found: {summary}",
        "fresh_install.constraints": f"Restore the constraints and fix the data the probes "
        f"found wanting: {summary}",
        "fresh_install.integrity": "Restore from a verified backup and find the writer that "
        "corrupts the file.",
        "fresh_install.foreign_keys": "Run PRAGMA foreign_keys=ON on every connection and "
        f"repair the orphaned rows: {summary}",
        "fresh_install.journal_mode": "Set PRAGMA journal_mode="
        f"{target.get('expect', {}).get('journal_mode', 'wal')} when the database is created.",
        "volume.mount": f"Put {folder} (the database's folder, not the file alone) on a named "
        "volume or a bind mount.",
        "restart.retention": "Find why rows written before a restart are lost: commit every "
        "write and keep the database on the volume.",
        "recreate.retention": f"Keep the database under the mounted volume "
        f"({target.get('mount', '?')}); the service keeps it at {database}.",
    }
    return texts.get(cid, f"Investigate: {summary}")

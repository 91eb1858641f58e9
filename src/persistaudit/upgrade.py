"""The upgrade stage: the previous version (upgrade_from) given data, then the current one on it.

The previous version is installed on a fresh volume of its own (the runtime's upgrade
rehearsal), given this stage's canary records, and every database is snapshotted (the schema
before). It is then stopped gracefully and the audited image started on the same volume, as
an operator upgrades: once ready, the canaries are read back through it, every database is
snapshotted again (the schema after), and the rows of each are compared before -> after.
What the previous version could not do is no finding about the release under audit: BLOCKED.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from persistaudit import retention, stages
from persistaudit.audit import DatabaseState, TargetAudit
from persistaudit.canary import Canary, ReadBack
from persistaudit.exceptions import (
    CanaryError,
    PersistauditError,
    TargetBlocked,
    TargetRemoved,
    UpgradeError,
)
from persistaudit.findings import Evidence
from persistaudit.runtime.upgrade import Rehearsal, describe


@dataclass
class UpgradeRun:
    """What the upgrade checks read: the databases before and after, and the canaries."""

    previous: str  # the previous version, as the report names it
    canaries: list[Canary] = field(default_factory=list)
    before: dict[str, DatabaseState] = field(default_factory=dict)  # the previous version's
    after: dict[str, DatabaseState] = field(default_factory=dict)  # after the upgrade
    retention: dict[str, retention.Retention] = field(default_factory=dict)
    previous_ready_s: float | None = None
    ready_s: float | None = None  # the current version on the previous version's data
    read_back: ReadBack | None = None
    failure: str = ""  # the current version did not start on the previous data: a finding
    logs: list[str] = field(default_factory=list)
    blocked: str = ""  # the upgrade could not be rehearsed: no finding
    actions: list[Evidence] = field(default_factory=list)
    evidence: list[Evidence] = field(default_factory=list)  # why it was blocked


def run_upgrade(audit: TargetAudit) -> UpgradeRun:
    source = audit.config.upgrade_from
    if source is None:  # the config refuses suites.upgrade.enabled without it
        raise UpgradeError(f"{audit.config.source}: upgrade_from: not given")
    run = UpgradeRun(describe(source))
    try:
        rehearsal = audit.runtime.upgrade()
    except PersistauditError as exc:  # UpgradeUnsupported: the driver cannot, yet
        run.blocked = str(exc)
        audit.log(f"BLOCKED: {exc}")
        return run
    try:
        _rehearse(audit, run, rehearsal)
    except TargetRemoved as exc:
        run.blocked = f"the upgrade could not be judged: {exc} (another job's docker rm -f?)"
        run.failure = ""
        audit.log(f"BLOCKED: {run.blocked}")
    finally:
        removed = rehearsal.close()
        if removed:
            audit.log("removed " + ", ".join(removed))
    return run


def _not_installed(run: UpgradeRun, why: object) -> str:
    return f"the previous version ({run.previous}) could not be installed: {why}"


def _rehearse(audit: TargetAudit, run: UpgradeRun, up: Rehearsal) -> None:
    try:
        up.install_previous()
    except TargetBlocked as exc:
        run.blocked = _not_installed(run, exc)
        logs = list(exc.evidence.get("logs", []))  # type: ignore[call-overload]
        run.evidence.append(
            Evidence("Last log lines of the previous version", "\n".join(logs) or "(none)", "log")
        )
        audit.log(f"BLOCKED: {run.blocked}")
        return
    except UpgradeError as exc:
        run.blocked = _not_installed(run, exc)
        audit.log(f"BLOCKED: {run.blocked}")
        return
    assert up.container is not None
    run.previous_ready_s = up.previous_ready_s
    run.actions.append(
        Evidence(
            "Install the previous version on a fresh volume",
            f"{up.install_steps()}\n# ready after {up.previous_ready_s or 0:.1f} s",
            "command",
        )
    )
    audit.log(f"upgrade: writing {audit.config.canary.records} canary records (previous version)")
    start = stages.get("upgrade").canary_start
    try:
        run.canaries = audit.canaries.write(up.container, audit.run_id, start)
    except CanaryError as exc:
        run.blocked = f"the previous version ({run.previous}) could not be written to: {exc}"
        audit.log(f"BLOCKED: {run.blocked}")
        return
    new = run.canaries
    run.actions.append(
        Evidence(
            f"Write {len(new)} canary records with the previous version",
            f"{audit.canaries.describe(new)} (markers {new[0].marker} .. {new[-1].marker})",
            "command",
        )
    )
    run.before = audit.snapshot("before-upgrade", up.container)
    previous_name = up.container.name
    started = time.monotonic()
    try:
        up.upgrade()
    except TargetBlocked as exc:
        run.failure = f"the new version did not start on the previous version's data: {exc}"
        run.logs = list(exc.evidence.get("logs", []))  # type: ignore[call-overload]
        audit.log(run.failure)
        return
    except UpgradeError as exc:
        run.blocked = f"the upgrade could not be rehearsed: {exc}"
        audit.log(f"BLOCKED: {run.blocked}")
        return
    assert up.container is not None
    run.ready_s = up.ready_s
    run.actions.append(
        Evidence(
            "Upgrade: the current version started on the previous version's volume",
            f"{up.upgrade_steps(previous_name)}\n# ready after {time.monotonic() - started:.1f} s",
            "command",
        )
    )
    audit.log(f"upgrade: reading {len(run.canaries)} canary records back (current version)")
    run.read_back = audit.canaries.read(up.container, audit.run_id, run.canaries)
    run.after = audit.snapshot("after-upgrade", up.container)
    for name, before in run.before.items():
        try:
            compared = audit.compare_rows(name, before, run.after[name])
        except PersistauditError as exc:  # the check reports it as not compared
            audit.log(f"upgrade: rows of {name} not compared: {exc}")
            continue
        if compared is not None:
            run.retention[name] = compared


stages.register("upgrade", run_upgrade)

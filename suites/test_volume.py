"""Volume: the database's folder is on persistent, writable storage."""

from __future__ import annotations

import pytest

from persistaudit.audit import TargetAudit
from persistaudit.mounts import as_mounts, companion_files, declared_line, evaluate
from persistaudit.plugin import CheckRecorder


@pytest.mark.check("volume.mount")
def test_mount(persistaudit_audit: TargetAudit, persistaudit_check: CheckRecorder) -> None:
    fresh = persistaudit_audit.fresh
    # What the compose model declares (none for an image: persistaudit chose the volume).
    declared = persistaudit_audit.runtime.declared_mounts()
    try:
        container = persistaudit_audit.runtime.container
    except RuntimeError:
        if not declared:
            raise persistaudit_check.blocked(f"no container to inspect: {fresh.blocked}") from None
        container = None  # it never started: the model alone says where the database goes
    # The mounts are readable even from a container that loops on restart.
    mounts = container.mounts() if container is not None else as_mounts(declared)
    db_path = persistaudit_audit.config.database.path
    # Which files SQLite writes beside it: as the fresh database's header says, or as expected.
    facts = fresh.database.facts
    wal = facts.wal if facts else persistaudit_audit.config.expect.journal_mode == "wal"
    verdict = evaluate(mounts, db_path, wal=wal, declared=declared)
    persistaudit_check.add(
        f"docker inspect {container.name} --format '{{{{json .Mounts}}}}'"
        if container is not None
        else f"no container (the start failed: {fresh.blocked}); judged from the compose model",
        "\n".join(
            f"{m.type:<7} {m.name or m.source} -> {m.destination} "
            f"({'rw' if m.rw else 'ro'}{', anonymous' if m.anonymous else ''})"
            for m in mounts
        )
        or "(no mounts)",
        "command",
    )
    if declared:
        persistaudit_check.add(
            "Mounts the compose model declares for the service",
            "\n".join(declared_line(m) for m in declared),
            "output",
        )
    persistaudit_check.metric("Volume mount type", "named volume or bind", verdict.kind, verdict.ok)
    if verdict.ok:
        if verdict.mount is None:  # not an assert: a bug of ours is an ERROR, never a FAIL
            raise RuntimeError("a passing mount verdict without its mount")
        persistaudit_check.summary = (
            f"{db_path} is on a {verdict.kind} ({verdict.mount.name or verdict.mount.source}) "
            f"mounted read-write at {verdict.mount.destination}, with its {companion_files(wal)}"
        )
        return
    persistaudit_check.summary = "; ".join(verdict.problems)
    pytest.fail(persistaudit_check.summary, pytrace=False)

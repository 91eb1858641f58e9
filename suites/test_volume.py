"""Volume: each database's folder is on persistent, writable storage, and no SQLite file is
left in the container layer (where a re-created container loses it)."""

from __future__ import annotations

import pytest

from persistaudit.audit import TargetAudit
from persistaudit.config import DatabaseEntry
from persistaudit.layer_files import IGNORED_ROOTS, LayerScan
from persistaudit.mounts import as_mounts, companion_files, declared_line, evaluate
from persistaudit.plugin import CheckRecorder

SHOWN = 20  # layer paths quoted in evidence


@pytest.mark.check("volume.mount")
def test_mount(
    persistaudit_audit: TargetAudit,
    persistaudit_check: CheckRecorder,
    persistaudit_database: DatabaseEntry,
) -> None:
    fresh = persistaudit_audit.fresh
    state = fresh.databases.get(persistaudit_database.name)
    if state is not None and state.missing:
        # Never a pass for a file that does not exist: where it would be mounted proves nothing.
        root = persistaudit_audit.config.check_id(
            "fresh_install.database", persistaudit_database.name
        )
        raise persistaudit_check.blocked(
            f"not evaluated: no database at {persistaudit_database.path} (see {root})"
        )
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
    db_path = persistaudit_database.path
    # Which files SQLite writes beside it: as the fresh database's header says, or as expected.
    facts = fresh.databases[persistaudit_database.name].facts
    wal = facts.wal if facts else persistaudit_database.journal_mode == "wal"
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
    problems = list(verdict.problems)
    layer = fresh.layer
    if isinstance(layer, LayerScan) and db_path in layer.changed:
        persistaudit_check.add(
            f"The container layer of {container.name if container else 'the target'} after "
            f"the fresh install ({layer.listed_by})",
            f"A {db_path}",
            "command",
        )
        problems.append(
            f"the database file {db_path} was written in the container layer: "
            "a re-created container starts without it"
        )
    if problems and not persistaudit_database.persist:
        persistaudit_check.add(
            "Not a data-loss finding: the config declares this database persist: false",
            f"{db_path} ({persistaudit_database.name}) is a cache the service may lose: "
            + "; ".join(problems),
        )
        persistaudit_check.metric("Volume mount type", "any (persist: false)", verdict.kind, True)
        persistaudit_check.summary = (
            f"persist: false: {db_path} is on the {verdict.kind}, which the config accepts "
            "for a cache (not a data-loss finding)"
        )
        return
    persistaudit_check.metric(
        "Volume mount type", "named volume or bind", verdict.kind, not problems
    )
    if not problems:
        if verdict.mount is None:  # not an assert: a bug of ours is an ERROR, never a FAIL
            raise RuntimeError("a passing mount verdict without its mount")
        persistaudit_check.summary = (
            f"{db_path} is on a {verdict.kind} ({verdict.mount.name or verdict.mount.source}) "
            f"mounted read-write at {verdict.mount.destination}, with its {companion_files(wal)}"
        )
        return
    persistaudit_check.summary = "; ".join(problems)
    pytest.fail(persistaudit_check.summary, pytrace=False)


@pytest.mark.check("volume.undeclared_databases")
def test_undeclared_databases(
    persistaudit_started: TargetAudit, persistaudit_check: CheckRecorder
) -> None:
    audit = persistaudit_started
    # After the fresh install, and again just before the re-create (what it is about to lose).
    looks = [audit.fresh.layer, audit.recreate_cycle.layer]
    scans = [s for s in looks if isinstance(s, LayerScan)]
    for scan in scans:
        shown = scan.changed[:SHOWN]
        more = f"\n... and {len(scan.changed) - SHOWN} more" if len(scan.changed) > SHOWN else ""
        persistaudit_check.add(
            f"Files added or changed in the container layer {scan.when} ({scan.listed_by}; "
            f"outside the mounts and {', '.join(IGNORED_ROOTS)})",
            ("\n".join(shown) + more) or "(none)",
            "command",
        )
    if not scans:
        reasons = "; ".join(s for s in looks if isinstance(s, str))
        raise persistaudit_check.blocked(reasons or "the container layer was never listed")
    declared = {d.path for d in audit.config.declared_databases}
    found = sorted({p for s in scans for p in s.databases})
    undeclared = [p for p in found if p not in declared]
    unexamined = sorted({p for s in scans for p in s.unexamined})
    persistaudit_check.add(
        "SQLite files in the container layer (first 16 bytes: 'SQLite format 3')",
        "\n".join(f"{p}{'' if p in undeclared else '  (declared)'}" for p in found) or "(none)",
        "command",
    )
    if unexamined:
        persistaudit_check.add(
            f"Not examined: {len(unexamined)} more files (only the first of each scan are read)",
            "\n".join(unexamined[:SHOWN]),
        )
    persistaudit_check.metric(
        "Undeclared SQLite files in the container layer", "0", str(len(undeclared)), not undeclared
    )
    if undeclared:
        persistaudit_check.summary = (
            f"{len(undeclared)} undeclared SQLite file(s) in the container layer, lost when the "
            f"container is re-created: {', '.join(undeclared)}"
        )
        pytest.fail(persistaudit_check.summary, pytrace=False)
    files = len({p for s in scans for p in s.changed})
    persistaudit_check.summary = (
        f"no undeclared SQLite file in the container layer ({files} changed files listed "
        f"{' and '.join(s.when for s in scans)})"
        + (f"; {len(unexamined)} more not examined" if unexamined else "")
    )

"""The idempotent start stage: start again, several times, on an initialised volume.

A second start that re-runs its initialisation trips over what exists (a CREATE TABLE that
fails, seed rows inserted again, a migration applied twice) and often carries on. So each
start is judged by what it changed and what it logged: the schema must not change, no row may
be lost, migration bookkeeping must not move, and no error line may appear that the fresh
install did not log too.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from persistaudit import log_errors, retention
from persistaudit.exceptions import TargetBlocked
from persistaudit.findings import Evidence

if TYPE_CHECKING:
    from persistaudit.audit import DatabaseState, TargetAudit

# Tables in which migration tools record what they applied: a start that changes them
# re-applied (or rolled back) a migration. Compared as immutable.
MIGRATION_TABLES = frozenset(
    {
        "schema_migrations",
        "alembic_version",
        "django_migrations",
        "knex_migrations",
        "flyway_schema_history",
        "_prisma_migrations",
        "goose_db_version",
        "schema_version",
        "__diesel_schema_migrations",
        "seaql_migrations",
        "_sqlx_migrations",
        "__drizzle_migrations",
        "__efmigrationshistory",
        "gorp_migrations",
    }
)


@dataclass
class Start:
    """One start on the initialised volume."""

    ready_s: float | None
    new_errors: list[str] = field(default_factory=list)


@dataclass
class IdempotentInit:
    starts: list[Start] = field(default_factory=list)
    before: dict[str, DatabaseState] = field(default_factory=dict)
    after: dict[str, DatabaseState] = field(default_factory=dict)
    retention: dict[str, retention.Retention] = field(default_factory=dict)
    migration_tables: dict[str, list[str]] = field(default_factory=dict)  # per database
    failure: str = ""  # a start did not become ready: a finding
    logs: list[str] = field(default_factory=list)  # that start's log
    blocked: str = ""
    actions: list[Evidence] = field(default_factory=list)


def migration_tables(state: DatabaseState) -> list[str]:
    """The database's tables that migration tools keep their records in."""
    if state.facts is None:
        return []
    return sorted(t for t in state.facts.tables if t.lower() in MIGRATION_TABLES)


def run(audit: TargetAudit) -> IdempotentInit:
    """Snapshot, start again `starts` times (each judged by its own log), snapshot, compare."""
    spec = audit.config.suites.idempotent_init
    result = IdempotentInit()
    if audit.fresh.blocked is not None:
        result.blocked = "the target did not start"
        return result
    fresh_logs = audit.fresh.logs
    result.before = audit.snapshot("before-starts")
    runtime = audit.runtime
    for n in range(1, spec.starts + 1):
        name = runtime.container.name
        audit.log(f"idempotent init: start {n} of {spec.starts} on the initialised volume")
        try:
            ready_s = runtime.restart()
        except TargetBlocked as exc:
            result.failure = f"start {n} on the initialised volume did not become ready: {exc}"
            result.logs = list(exc.evidence.get("logs", []))  # type: ignore[call-overload]
            return result
        start = Start(ready_s)
        start.new_errors = log_errors.new_errors(
            runtime.container.logs(tail=2000, current_run=True), fresh_logs
        )
        result.starts.append(start)
        result.actions.append(
            Evidence(
                f"Start {n} on the initialised volume",
                f"$ {runtime.step_command('restart').format(name=name)}\n"
                f"# ready after {ready_s:.1f} s; "
                f"{len(start.new_errors)} error line(s) the fresh install did not log",
                "command",
            )
        )
    result.after = audit.snapshot("after-starts")
    for db, before in result.before.items():
        after = result.after[db]
        entry = audit.databases[db]
        if not (before.facts and after.facts and before.snapshot and after.snapshot):
            continue
        tracked = migration_tables(before)
        result.migration_tables[db] = tracked
        result.retention[db] = retention.compare_copies(
            before.snapshot.path,
            after.snapshot.path,
            before.facts,
            after.facts,
            retention.TableKinds(entry.volatile, entry.append_only, [*entry.immutable, *tracked]),
            audit.limits_of(db),
        )
    return result

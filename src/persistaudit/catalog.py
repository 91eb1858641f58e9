"""The check catalog: what each suite and check is, in one place.

The report's suite titles and "what was done", the risk table, the recommendations, the
"not tested" list and residual risks, JUnit and the waiver ids are all derived from these
entries, so a new check is one `register(Check(...))` here (or in a team's conftest.py) and one
marked test in its suite. Import-light on purpose: config loading and report rendering use it.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass

from persistaudit.exceptions import CatalogError

# A check id: `suite.check`, optionally with a parameter (`fresh_install.schema[vectors]`).
ID_PATTERN = r"^[a-z_]+\.[a-z_]+(\[[A-Za-z0-9_.-]+\])?$"
_ID = re.compile(ID_PATTERN)
# What a recommendation may quote, filled from the check's result and the audited target.
ADVICE_FIELDS = frozenset({"summary", "database", "folder", "mount", "journal_mode"})


@dataclass(frozen=True)
class Suite:
    """A suite of checks, shown in this order in results and the report."""

    name: str  # the id's first part
    order: int
    title: str  # the report's section heading
    done: str = ""  # "What was done": how the suite's checks gathered their evidence


@dataclass(frozen=True)
class Check:
    """One check: what a failure of it means for a release, and what to do about it."""

    id: str  # `suite.check`, the same in results.json, JUnit, the report and waivers
    order: int  # within its suite
    title: str  # passes when ... (one line)
    risk: str  # the risk a failure leaves
    severity: str  # CRITICAL, HIGH, MEDIUM or LOW
    mitigation: str  # the general remedy, for the risk table
    # The next step for this result; may quote {summary}, {database}, {folder}, {mount} and
    # {journal_mode} (ADVICE_FIELDS).
    recommendation: str = "Investigate: {summary}"  # UNCLASSIFIED_ADVICE
    # BLOCKED here is the finding itself (the target did not start), not a check left
    # unverified; the checks it holds up are listed under it.
    gate: bool = False

    @property
    def suite(self) -> str:
        return self.id.split(".", 1)[0]

    def __post_init__(self) -> None:
        if not _ID.match(self.id) or "[" in self.id:  # a parameter belongs to a result
            raise CatalogError(f"check id {self.id!r} is not of the form suite.check")
        if self.severity not in SEVERITIES:
            raise CatalogError(
                f"{self.id}: severity {self.severity!r} is not one of {', '.join(SEVERITIES)}"
            )
        try:
            fields = {f for _, f, _, _ in string.Formatter().parse(self.recommendation)}
        except ValueError as exc:
            raise CatalogError(f"{self.id}: malformed recommendation: {exc}") from None
        unknown = sorted(f"{{{f}}}" for f in fields - ADVICE_FIELDS if f is not None)
        if unknown:
            raise CatalogError(
                f"{self.id}: the recommendation quotes {', '.join(unknown)}; it may quote "
                f"{', '.join(f'{{{f}}}' for f in sorted(ADVICE_FIELDS))} (write {{{{ for a brace)"
            )

    def advice(self, facts: dict[str, str]) -> str:
        """The recommendation with the result's facts filled in."""
        return self.recommendation.format_map(facts)


@dataclass(frozen=True)
class Gap:
    """A risk no check in this audit tested; reported until a check of `suite` runs."""

    risk: str  # the residual-risk line
    suite: str = ""  # the suite that would test it; "" for risks outside any audit
    area: str = ""  # its name in the report's "not tested" line
    recommendation: str = ""  # the next step while it stays untested


SEVERITIES = ("CRITICAL", "HIGH", "MEDIUM", "LOW")
# What the report says of a check id the catalog does not know (risk, severity, mitigation).
UNCLASSIFIED = ("Not classified.", "MEDIUM", "Investigate the finding.")
UNCLASSIFIED_ADVICE = "Investigate: {summary}"

_suites: dict[str, Suite] = {}
_checks: dict[str, Check] = {}
GAPS: list[Gap] = []


def register(entry: Suite | Check) -> None:
    """Add a suite or a check to the catalog (a team's own checks: call it in a conftest.py,
    so the catalog knows them before a config's waivers are read). A check's suite must be
    registered first; registering an id twice is an error, unless the entry is identical."""
    if isinstance(entry, Suite):
        known = _suites.get(entry.name)
        if known is not None and known != entry:
            raise CatalogError(f"suite {entry.name!r} is already in the catalog")
        _suites[entry.name] = entry
        return
    if entry.suite not in _suites:
        raise CatalogError(f"{entry.id}: register its suite {entry.suite!r} first")
    known_check = _checks.get(entry.id)
    if known_check is not None and known_check != entry:
        raise CatalogError(f"check {entry.id!r} is already in the catalog")
    _checks[entry.id] = entry


def unregister(check_id: str) -> None:
    """Remove a check (and its suite once it has none left); for tests."""
    entry = _checks.pop(check_id, None)
    if entry is not None and not any(c.suite == entry.suite for c in _checks.values()):
        _suites.pop(entry.suite, None)


def base_id(check_id: str) -> str:
    """The catalog's id of a result id: `fresh_install.schema[vectors]` -> fresh_install.schema."""
    return check_id.split("[", 1)[0]


def lookup(check_id: str) -> Check | None:
    """The entry of a result id (parametrized or not), or None for an unknown check."""
    return _checks.get(base_id(check_id))


def suite(name: str) -> Suite | None:
    return _suites.get(name)


def checks() -> list[Check]:
    """Every check, in run order."""
    return sorted(_checks.values(), key=rank_of)


def ids() -> list[str]:
    return [c.id for c in checks()]


def rank_of(entry: Check) -> tuple[int, int]:
    return _suites[entry.suite].order, entry.order


def rank(check_id: str) -> tuple[int, int]:
    """Sort key of a check id: suites in catalog order, checks in their order; unknown last."""
    entry = lookup(check_id)
    if entry is not None:
        return rank_of(entry)
    known = _suites.get(check_id.split(".", 1)[0])
    return (known.order, len(_checks)) if known is not None else (len(_suites) + 1000, 0)


def is_gate(check_id: str) -> bool:
    """Whether BLOCKED on this check is the finding that the target did not start."""
    entry = lookup(check_id)
    return entry is not None and entry.gate


def gates() -> list[str]:
    """The checks whose BLOCKED says the target did not start (where a blocked check points)."""
    return [c.id for c in checks() if c.gate]


def known(check_id: str) -> bool:
    """Whether a (possibly parametrized) id is well formed and names a catalog check."""
    return bool(_ID.match(check_id)) and lookup(check_id) is not None


def bundled() -> list[Check]:
    """The checks persistaudit ships, in run order (not those a team registered)."""
    return [c for c in checks() if c.id in BUNDLED]


def is_bundled(check_id: str) -> bool:
    """Whether a (possibly parametrized) result id is one of persistaudit's own checks."""
    return base_id(check_id) in BUNDLED


def gaps(tested_suites: set[str]) -> list[Gap]:
    """The residual risks left by an audit whose checks of these suites ran."""
    return [g for g in GAPS if not g.suite or g.suite not in tested_suites]


# -- the bundled suites ------------------------------------------------------------------------

for _entry in (
    Suite(
        "fresh_install",
        0,
        "Fresh install",
        "The target was started on an empty named volume created for the audit. Once it was "
        "ready, it was paused, its database and sidecar files were copied out through the "
        "Docker API, and the copy was inspected on the host with SQLite.",
    ),
    Check(
        "fresh_install.startup",
        0,
        "The target starts on an empty volume and becomes ready.",
        "The service cannot be deployed or validated: startup is blocked.",
        "CRITICAL",
        "Fix the cause quoted from the logs (for a licence check: set the variable, or ship an "
        "evaluation mode), then re-run the audit.",
        "Fix the start failure quoted in the logs, then re-run the audit ({summary}).",
        gate=True,
    ),
    Check(
        "fresh_install.database",
        1,
        "A SQLite database exists at the configured path after a fresh install.",
        "The service keeps its data somewhere other than the audited path (or nowhere): what "
        "it writes is not where the deployment keeps, backs up or mounts its data.",
        "CRITICAL",
        "Make the service write its database at the path its deployment declares (and mounts).",
        "Find where the service really writes its database and make the configured path (and "
        "its volume) match: {summary}",
    ),
    Check(
        "fresh_install.schema",
        2,
        "The fresh database has the manifest's schema.",
        "Fresh installs lack tables the release needs: features fail at first use.",
        "CRITICAL",
        "Register every migration/model in the initialisation path and keep the manifest "
        "under expected/ in step with the release.",
        "Make the fresh-install path create the promised schema (register every migration and "
        "model); regenerate the manifest with `persistaudit snapshot` only for intended "
        "changes. Found: {summary}",
    ),
    Check(
        "fresh_install.constraints",
        3,
        "The manifest's constraints, views and JSON columns hold on the fresh database.",
        "The database accepts rows its constraints should refuse: invalid data is stored "
        "silently and breaks the features that rely on it.",
        "HIGH",
        "Declare the constraints the release promises in the schema the fresh install "
        "creates, and repair the rows that violate them.",
        "Restore the constraints and fix the data the probes found wanting: {summary}",
    ),
    Check(
        "fresh_install.integrity",
        4,
        "PRAGMA integrity_check finds the fresh database sound.",
        "The database file is corrupt.",
        "CRITICAL",
        "Restore from backup; find the writer that corrupts (unsafe copies, network filesystems).",
        "Restore from a verified backup and find the writer that corrupts the file.",
    ),
    Check(
        "fresh_install.foreign_keys",
        5,
        "PRAGMA foreign_key_check finds no orphaned rows.",
        "Rows point at missing parents: silent data inconsistency.",
        "HIGH",
        "Enable PRAGMA foreign_keys=ON on every connection and repair the orphaned rows.",
        "Run PRAGMA foreign_keys=ON on every connection and repair the orphaned rows: {summary}",
    ),
    Check(
        "fresh_install.journal_mode",
        6,
        "The database uses the promised journal mode.",
        "The journal mode is not the promised one: concurrency and crash behaviour differ.",
        "MEDIUM",
        "Set PRAGMA journal_mode at database creation, as the release promises.",
        "Set PRAGMA journal_mode={journal_mode} when the database is created.",
    ),
    Suite(
        "volume",
        1,
        "Volume and mount",
        "The container's mounts were read from the engine (docker inspect) and matched "
        "against the folder that holds the database.",
    ),
    Check(
        "volume.mount",
        0,
        "The database's folder is on a named volume or bind mount.",
        "The database is not on persistent storage: data is lost when the container is "
        "removed or re-created.",
        "CRITICAL",
        "Put the database's folder (not the file alone) on a named volume or bind mount.",
        "Put {folder} (the database's folder, not the file alone) on a named volume or a bind "
        "mount.",
    ),
    Check(
        "volume.undeclared_databases",
        1,
        "The service writes no SQLite file in the container layer that the config does not "
        "declare.",
        "A SQLite database nobody declared is kept in the container layer: its data is lost "
        "when the container is re-created, and no check examines it.",
        "HIGH",
        "Keep every SQLite file on a volume, and declare it under databases (persist: false "
        "for a cache the service may lose).",
        "Move each database the service writes in the container layer onto a volume and "
        "declare it under databases: {summary}",
    ),
    Suite(
        "restart",
        2,
        "Restart persistence",
        "Canary records were written through the service's API, the database was "
        "snapshotted, the container was restarted (docker restart), and the records and every "
        "table's rows were compared once it was ready again.",
    ),
    Check(
        "restart.retention",
        0,
        "Canary records and every table's rows survive a restart.",
        "Data written before a restart is lost or altered.",
        "CRITICAL",
        "Make sure writes are committed and the database lives on the volume.",
        "Find why rows written before a restart are lost: commit every write and keep the "
        "database on the volume.",
    ),
    Check(
        "restart.graceful_stop",
        1,
        "On docker stop, the service exits by itself within the stop timeout, with a clean "
        "exit code.",
        "The service ignores SIGTERM: every ordinary restart or deploy kills it after the "
        "timeout, in the middle of whatever it was writing.",
        "HIGH",
        "Handle SIGTERM (finish or abandon the request in flight, close the database, exit); "
        "run the service as PID 1 with a handler, or under an init (docker run --init, tini).",
        "Make the service exit on SIGTERM within the stop timeout (a handler that closes the "
        "database, or an init such as tini): {summary}",
    ),
    Check(
        "restart.idempotent_init",
        2,
        "Starting again on an initialised volume changes no schema or data and logs no new error.",
        "Initialisation is not idempotent: a second start re-runs migrations or seeds, fails "
        "on what already exists, or alters data.",
        "HIGH",
        "Make initialisation check what exists (migration versions, IF NOT EXISTS, seeds "
        "applied once) before it changes anything.",
        "Make every start safe on an initialised database (record and consult migration "
        "versions; seed once): {summary}",
    ),
    Suite(
        "recreate",
        3,
        "Re-create persistence",
        "More canary records were written, the container was stopped and removed with its "
        "volume kept, a new container was started from the same image on the same volume, "
        "and every record, row and the schema were compared.",
    ),
    Check(
        "recreate.retention",
        0,
        "Records, rows and the schema survive removing and re-creating the container.",
        "Data is lost when the container is removed and re-created (upgrades, redeploys).",
        "CRITICAL",
        "Store the database under the mounted volume path; verify the path the service uses.",
        "Keep the database under the mounted volume ({mount}); the service keeps it at {database}.",
    ),
    Suite(
        "crash",
        4,
        "Crash under write load",
        "A write load was driven through the service's API with every acknowledged write "
        "recorded; in the middle of it the container was killed (SIGKILL) and started again "
        "on the same volume, and the database's integrity and every acknowledged write were "
        "checked, for several rounds at random kill points.",
    ),
    Check(
        "crash.integrity",
        0,
        "After a kill in the middle of writes, the database passes PRAGMA integrity_check.",
        "A crash during writes corrupts the database.",
        "CRITICAL",
        "Keep SQLite's durability settings (no synchronous=OFF, no journal_mode=OFF or "
        "MEMORY) and the database off network filesystems.",
        "Find what makes a crash corrupt the database (synchronous=OFF, journal off, a network "
        "filesystem): {summary}",
    ),
    Check(
        "crash.acknowledged_writes",
        1,
        "Every write the service acknowledged before a kill is there after the restart.",
        "The service acknowledges writes before they are durable: a crash loses data users "
        "were told was saved.",
        "CRITICAL",
        "Commit each write before acknowledging it; a write-behind buffer must not answer "
        "success before its flush.",
        "Commit every write before the service answers success: {summary}",
    ),
    Suite(
        "backup",
        5,
        "Backup and restore",
        "An online backup of the live database was taken while the service ran, checked for "
        "integrity and recorded by its SHA-256 and size, restored into a fresh volume, and "
        "the service was started on it and its canary records read back.",
    ),
    Check(
        "backup.integrity",
        0,
        "The online backup is a sound SQLite database with the live schema.",
        "Backups are unusable: a restore fails when it is needed.",
        "CRITICAL",
        "Back up with SQLite's backup API or VACUUM INTO (never a plain copy of the main file "
        "alone), and verify every backup.",
        "Make the backup a consistent copy (SQLite's backup API or VACUUM INTO): {summary}",
    ),
    Check(
        "backup.restore",
        1,
        "The service starts on the restored backup and every record written before the "
        "backup is there.",
        "Backups miss data or do not restore: a restore loses recent writes.",
        "CRITICAL",
        "Include the WAL's committed pages in every backup (backup API, VACUUM INTO, or a "
        "checkpoint first) and rehearse restores.",
        "Make the backup include every committed write, then rehearse a restore: {summary}",
    ),
    Suite(
        "upgrade",
        6,
        "Upgrade on existing data",
        "The previous version named by upgrade_from was installed on a fresh volume and given "
        "canary records; the current version was then started on the same volume, its schema "
        "compared with the current manifest and every record read back.",
    ),
    Check(
        "upgrade.schema",
        0,
        "After the upgrade from the previous version, the schema matches the current manifest.",
        "An upgrade leaves the schema unlike a fresh install: migrations are missing or wrong.",
        "HIGH",
        "Test every release's migrations on a copy of the previous release's data.",
        "Make the migrations bring the previous version's schema to the current manifest: "
        "{summary}",
    ),
    Check(
        "upgrade.retention",
        1,
        "Every record written with the previous version is there after the upgrade.",
        "An upgrade loses user data: a migration drops or rewrites a table that holds data.",
        "CRITICAL",
        "Migrate tables with ALTER TABLE or copy their rows into the new table; never drop a "
        "table that holds data.",
        "Keep every row through the migration: {summary}",
    ),
):
    register(_entry)

# The checks persistaudit ships (a team's registered checks are not among them): a run that
# left some of these out says so in its verdict.
BUNDLED = frozenset(_checks)

GAPS.extend(
    [
        Gap(
            "Backups and restores were not verified.",
            "backup",
            "backup/restore",
            "Verify that backups restore: no backup/restore suite ran in this audit.",
        ),
        Gap(
            "Behaviour under load and after a crash (kill -9 during writes) was not tested.",
            "crash",
            "crash under load",
        ),
        Gap(
            "Upgrades from the previous release's database were not tested.",
            "upgrade",
            "upgrades",
        ),
        Gap("Host filesystem and volume driver failures are outside this audit."),
    ]
)

"""Taking and verifying a backup of a SQLite database, on host copies.

The backup API route copies persistaudit's own paused snapshot (WAL included) with SQLite's
backup API, page by page under a deadline; the service's own backup command is run by the
backup stage (backup_stage.py), which copies its output out and verifies it here too. A backup
is recorded by its SHA-256 and size as soon as it exists, before anything opens it, so the
digest names the very bytes that were verified.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path

from persistaudit import schema
from persistaudit.diff import diff
from persistaudit.exceptions import LimitExceeded, PersistauditError, SnapshotError, sqlite_message
from persistaudit.inspect import DatabaseFacts, inspect_database
from persistaudit.manifest import Manifest
from persistaudit.sqlite_files import Digest as Digest  # backup_stage's import
from persistaudit.sqlite_files import digest_of as digest_of
from persistaudit.sqlite_guard import Limits, open_copy, reading

BACKUP_PAGES = 256  # pages per step of the backup API: a deadline is checked between steps
API_METHOD = "SQLite online backup API (sqlite3.Connection.backup) from a paused snapshot"


@dataclass
class Verification:
    """What a backup file was found to be: sound, with the live schema, or why not."""

    facts: DatabaseFacts | None = None
    schema: Manifest | None = None
    schema_changes: list[str] = field(default_factory=list)  # vs the live database
    integrity: list[str] = field(default_factory=list)  # PRAGMA integrity_check's rows
    error: str = ""  # it could not be read as a database (a finding)
    blocked: str = ""  # a limit stopped the verification (not judged)

    @property
    def sound(self) -> bool:
        """Integrity ok and the live schema: a backup worth restoring."""
        return (
            not self.error
            and not self.blocked
            and self.facts is not None
            and self.facts.integrity_ok
            and not self.schema_changes
        )


def api_backup(source: Path, dest: Path, limits: Limits | None = None) -> float:
    """Back up the host copy source (and its WAL) to dest with SQLite's backup API.

    Returns the seconds it took. The copy is done in steps of BACKUP_PAGES pages, and stops
    with QueryTimeout past limits.query_timeout; on any error dest is removed.
    """
    limits = limits or Limits()
    started = time.monotonic()
    dest.unlink(missing_ok=True)
    src = open_copy(source, limits)
    try:
        out = sqlite3.connect(dest, isolation_level=None)
        try:

            def step(_status: int, _remaining: int, _total: int) -> None:
                src.check_deadline()  # raises QueryTimeout: the backup stops there

            with src.stage():
                src.backup(out, pages=BACKUP_PAGES, progress=step)
        finally:
            out.close()
    except LimitExceeded as exc:
        dest.unlink(missing_ok=True)
        raise type(exc)(f"{source}: backing up the database: {exc}") from None
    except sqlite3.DatabaseError as exc:
        dest.unlink(missing_ok=True)
        raise SnapshotError(
            f"{source}: cannot back up the database: {sqlite_message(exc)}"
        ) from None
    except BaseException:
        dest.unlink(missing_ok=True)
        raise
    finally:
        src.close()
    return time.monotonic() - started


def verify(
    path: Path, live: Manifest | None, name: str, limits: Limits | None = None
) -> Verification:
    """Integrity and schema of the backup at path, compared with the live database's schema.

    live None: the live schema is unknown, so only integrity is judged.
    """
    result = Verification()
    try:
        result.facts = inspect_database(path, limits)
        result.schema = schema.from_copy(path, name, limits)
    except LimitExceeded as exc:
        result.blocked = str(exc)
        return result
    except PersistauditError as exc:
        result.error = str(exc)
        result.integrity = _integrity_alone(path, limits)
        return result
    result.integrity = result.facts.integrity
    if result.facts.integrity_error:
        result.blocked = result.facts.integrity_error
    if live is not None:
        result.schema_changes = [d.describe() for d in diff(live, result.schema)]
    return result


def _integrity_alone(path: Path, limits: Limits | None) -> list[str]:
    """integrity_check's rows for a file whose other facts could not be read ([] if none)."""
    try:
        with reading(path, "the integrity check", limits) as conn:
            return [str(r[0]) for r in conn.execute("PRAGMA integrity_check")]
    except PersistauditError:
        return []

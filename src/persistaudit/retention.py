"""Row retention between two snapshots of the same database. Pure functions."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field

from persistaudit.inspect import DatabaseFacts


@dataclass(frozen=True)
class TableRetention:
    name: str
    rows_before: int
    rows_after: int
    retained: int
    digest_equal: bool


@dataclass(frozen=True)
class Retention:
    tables: list[TableRetention]
    missing_tables: list[str]  # present before, gone after (volatile ones too)
    # Tables whose rows could not be read in full in one snapshot or the other (a time or
    # size limit), with why: neither kept nor lost, so not in tables.
    unverified: list[str] = field(default_factory=list)
    # Volatile tables (written on every start) present before and after: compared by presence
    # only, so not in tables nor in the row counts.
    by_presence: list[str] = field(default_factory=list)

    @property
    def rows_before(self) -> int:
        return sum(t.rows_before for t in self.tables)

    @property
    def rows_retained(self) -> int:
        return sum(t.retained for t in self.tables)

    @property
    def percent(self) -> float:
        return 100.0 * self.rows_retained / self.rows_before if self.rows_before else 100.0

    @property
    def complete(self) -> bool:
        """Every row kept, every compared table's count and content digest unchanged."""
        return not self.missing_tables and all(
            t.retained == t.rows_before and t.digest_equal for t in self.tables
        )


def compare(
    before: DatabaseFacts, after: DatabaseFacts, volatile: Collection[str] = ()
) -> Retention:
    """How many of the rows before are still there after, table by table, by content.

    A volatile table (one the service writes on every start) is compared by presence: its
    rows may change, but a volatile table that disappears is lost like any other.
    """
    tables = []
    missing = []
    unverified = []
    by_presence = []
    for name, old in sorted(before.data.items()):
        new = after.data.get(name)
        if new is None:
            missing.append(name)
            if name not in volatile:
                tables.append(TableRetention(name, old.rows, 0, 0, False))
            continue
        if name in volatile:
            by_presence.append(name)
            continue
        if old.error or new.error:
            unverified.append(old.error or new.error)
            continue
        kept = sum(min(count, new.row_hashes[h]) for h, count in old.row_hashes.items())
        tables.append(TableRetention(name, old.rows, new.rows, kept, old.digest == new.digest))
    return Retention(tables, missing, unverified, by_presence)

"""Row retention between two snapshots of the same database, table by table.

Rows are matched by identity (rowdiff: primary key, rowid, or content): a row whose identity
is gone is lost; a changed or added row is reported as such and is a finding only where the
table's kind says so (append_only, immutable). A service that updates rows as it works is
not losing them. A volatile table is compared by presence. A table rowdiff cannot compare
falls back to the multiset of row digests (inspect), which cannot tell a changed row from a
lost one plus an added one, and the table says so.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from pathlib import Path

from persistaudit import digest, rowdiff
from persistaudit.exceptions import LimitExceeded, PersistauditError
from persistaudit.inspect import DatabaseFacts, TableRows
from persistaudit.sqlite_guard import Limits

ROWS = "rows"  # rows may change and be added; a lost row is a finding
APPEND_ONLY = "append_only"  # rows may be added; a changed or lost row is a finding
IMMUTABLE = "immutable"  # any changed, lost or added row is a finding
BY_DIGEST = "content digest"  # the identity of a table compared by the fallback

# A table's row changes, or why they could not be had (compare by digests), or None (by
# digests, nothing to say); raises LimitExceeded to leave the table unverified.
_ByRows = Callable[[str], "rowdiff.RowChanges | str | None"]
# The rows of a table kept by digest, read again from the copies (too many to keep their
# digests in memory), or why they could not be.
_Reread = Callable[[str], "int | str"]


@dataclass(frozen=True)
class TableKinds:
    """What a database's config says about its tables (DatabaseEntry)."""

    volatile: Collection[str] = ()
    append_only: Collection[str] = ()
    immutable: Collection[str] = ()

    def kind(self, table: str) -> str:
        if table in self.immutable:
            return IMMUTABLE
        if table in self.append_only:
            return APPEND_ONLY
        return ROWS


@dataclass(frozen=True)
class TableRetention:
    """One table's rows before and after a cycle, matched by identity."""

    name: str
    rows_before: int
    rows_after: int
    lost: int
    changed: int = 0
    added: int = 0
    identity: str = BY_DIGEST  # "primary key (id)", "rowid", "content", or BY_DIGEST
    kind: str = ROWS
    lost_keys: tuple[str, ...] = ()
    changed_keys: tuple[str, ...] = ()
    gone: bool = False  # the table itself is gone after the cycle
    note: str = ""  # why the rows were compared by digest, not by identity

    @property
    def retained(self) -> int:
        return self.rows_before - self.lost

    def findings(self) -> list[str]:
        """What the table's kind makes a finding: lost rows always, changed or added ones
        in an append-only or immutable table."""
        if self.gone:
            return [f"table {self.name} gone after the cycle ({_rows(self.lost)} lost)"]
        found = []
        if self.lost:
            found.append(f"{_rows(self.lost)} lost from {self.name}{self._keys(self.lost_keys)}")
        if self.kind in (APPEND_ONLY, IMMUTABLE) and self.changed:
            found.append(
                f"{_rows(self.changed)} changed in {self.kind.replace('_', '-')} table "
                f"{self.name}{self._keys(self.changed_keys, self.changed)}"
            )
        if self.kind == IMMUTABLE and self.added:
            found.append(f"{_rows(self.added)} added to immutable table {self.name}")
        return found

    def _keys(self, keys: tuple[str, ...], total: int | None = None) -> str:
        """ " (ids 4, 5, 6)": the sample keys, named by the identity's column."""
        if not keys:
            return ""
        more = ", ..." if len(keys) < (self.lost if total is None else total) else ""
        if self.identity == "rowid":
            name = "rowid"
        elif self.identity.startswith("primary key (") and "," not in self.identity:
            name = self.identity[len("primary key (") : -1]
        else:
            return f" (keys {'; '.join(f'({k})' for k in keys)}{more})"
        plural = "s" if len(keys) > 1 or more else ""
        return f" ({name}{plural} {', '.join(keys)}{more})"


def _rows(n: int) -> str:
    return f"{n} row{'' if n == 1 else 's'}"


@dataclass(frozen=True)
class Retention:
    tables: list[TableRetention]
    missing_tables: list[str]  # present before, gone after (volatile ones too)
    # Tables whose rows could not be compared in full (a time or size limit), with why:
    # neither kept nor lost, so not in tables.
    unverified: list[str] = field(default_factory=list)
    # Volatile tables (written on every start) present before and after: compared by presence
    # only, so not in tables nor in the row counts.
    by_presence: list[str] = field(default_factory=list)
    volatile: Collection[str] = ()

    @property
    def rows_before(self) -> int:
        return sum(t.rows_before for t in self.tables)

    @property
    def rows_retained(self) -> int:
        return sum(t.retained for t in self.tables)

    @property
    def rows_lost(self) -> int:
        return sum(t.lost for t in self.tables)

    @property
    def percent(self) -> float:
        return 100.0 * self.rows_retained / self.rows_before if self.rows_before else 100.0

    @property
    def by_digest(self) -> list[TableRetention]:
        """The tables compared by the fallback (row digests), not by identity."""
        return [t for t in self.tables if t.identity == BY_DIGEST and not t.gone]

    def findings(self) -> list[str]:
        """Every finding, table by table, then the volatile tables that are gone."""
        found = [text for t in self.tables for text in t.findings()]
        found += [f"volatile table {t} gone" for t in self.missing_tables if t in self.volatile]
        return found

    @property
    def complete(self) -> bool:
        """No row lost, no table gone, and nothing the table kinds forbid."""
        return not self.findings()


def measured(canaries_percent: float | None, retention: Retention | None) -> str:
    """A retention check's metric: the canaries read back where the check reports them (the
    headline), else the rows kept; "not measured" without a snapshot to measure from, never
    0.0% (the canaries may all have been read back)."""
    if canaries_percent is not None:
        return f"{canaries_percent:.1f}%"
    if retention is None:
        return "not measured"
    return f"{retention.percent:.1f}% of rows kept"


def compare(
    before: DatabaseFacts,
    after: DatabaseFacts,
    volatile: Collection[str] = (),
    kinds: TableKinds | None = None,
) -> Retention:
    """Retention by the multiset of row digests alone (no identity): a changed row counts as
    one lost and one added. The fallback of compare_copies, and its tables gone or volatile.
    """
    kinds = kinds or TableKinds(volatile=volatile)

    def no_copies(name: str) -> str:
        return f"table {name}: too many rows to compare by digests without the copies"

    return _compare(before, after, kinds, lambda name: None, no_copies)


def compare_copies(
    before_path: Path,
    after_path: Path,
    before: DatabaseFacts,
    after: DatabaseFacts,
    kinds: TableKinds,
    limits: Limits | None = None,
) -> Retention:
    """Retention with rows matched by identity between the two host copies (rowdiff).

    A table rowdiff cannot read falls back to the row digests, and says why; a limit
    (QueryTimeout, ValueTooLarge) leaves the table unverified. Copies with the same
    fingerprint (byte-identical files) hold the same rows, and so does a table with the same
    pages in both (btree_pages): such tables are not compared row by row, only their
    identity is read.
    """
    same = bool(before.fingerprint) and before.fingerprint == after.fingerprint

    def reread(name: str) -> int | str:
        try:
            return digest.kept_rows(before_path, after_path, name, limits)
        except PersistauditError as exc:  # a limit too: the table is not verified
            return f"comparing rows of table {name} by digests: {exc}"

    try:
        with rowdiff.attached(before_path, after_path, limits) as conn:

            def by_rows(name: str) -> rowdiff.RowChanges | str:
                try:
                    pages = before.page_digests.get(name)
                    alike = same or (pages is not None and after.page_digests.get(name) == pages)
                    if alike:  # _compare asks only for tables present after
                        return rowdiff.unchanged_rows(conn, name, _rows_known(before, name))
                    return rowdiff.compare_rows(conn, name)
                except LimitExceeded:
                    raise
                except PersistauditError as exc:
                    return str(exc)

            return _compare(before, after, kinds, by_rows, reread)
    except PersistauditError as exc:  # a limit too: every table still has its digests
        why = f"the copies could not be attached together: {exc}"
        return _compare(before, after, kinds, lambda name: why, reread)


def _compare(
    before: DatabaseFacts,
    after: DatabaseFacts,
    kinds: TableKinds,
    by_rows: _ByRows,
    reread: _Reread,
) -> Retention:
    tables = []
    missing = []
    unverified = []
    by_presence = []
    for name in sorted(before.data):  # row digests are read only where they are needed
        kind = kinds.kind(name)
        if name not in after.data:
            missing.append(name)
            if name not in kinds.volatile:
                rows = before.data[name].rows
                tables.append(TableRetention(name, rows, 0, rows, kind=kind, gone=True))
            continue
        if name in kinds.volatile:
            by_presence.append(name)
            continue
        try:
            changes = by_rows(name)
        except LimitExceeded as exc:
            unverified.append(str(exc))
            continue
        if isinstance(changes, rowdiff.RowChanges):
            tables.append(
                TableRetention(
                    name,
                    changes.before,
                    changes.after,
                    changes.lost,
                    changes.changed,
                    changes.added,
                    changes.identity,
                    kind,
                    tuple(changes.lost_keys),
                    tuple(changes.changed_keys),
                )
            )
            continue
        old, new = before.data[name], after.data[name]
        if old.error or new.error:
            unverified.append(old.error or new.error)
            continue
        if old.hashes_kept and new.hashes_kept:
            kept = sum(min(count, new.row_hashes[h]) for h, count in old.row_hashes.items())
        else:
            again = reread(name)
            if isinstance(again, str):
                unverified.append(again)
                continue
            kept = again
        tables.append(
            TableRetention(
                name,
                old.rows,
                new.rows,
                old.rows - kept,
                added=new.rows - kept,
                kind=kind,
                note=changes or "",
            )
        )
    return Retention(tables, missing, unverified, by_presence, kinds.volatile)


def _rows_known(facts: DatabaseFacts, table: str) -> int | None:
    """table's row count if its digests were read already; None: count them in SQL."""
    data = facts.data
    known = data.known(table) if isinstance(data, TableRows) else data.get(table)
    return known.rows if known is not None and not known.error else None

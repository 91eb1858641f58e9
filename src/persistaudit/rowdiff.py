"""Rows matched by identity between two snapshots: which were lost, changed or added.

A service that updates rows as it works (a build finishes, a heartbeat moves) changes rows
without losing any; counting every changed row as lost gives a false data-loss verdict. So
rows are matched by their primary key (the rowid where the table has none, or by content
where it has neither), and only a row whose identity is gone counts as lost.

Both copies are attached to one connection and compared by SQLite itself, through the key's
index: memory stays bounded however large the tables, and every statement runs under the
copy's deadline (sqlite_guard).
"""

from __future__ import annotations

import sqlite3
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from persistaudit.display import printable
from persistaudit.exceptions import LimitExceeded, SnapshotError, sqlite_message
from persistaudit.sqlite_guard import GuardedConnection, Limits, open_copy

SAMPLES = 5  # keys of lost and changed rows kept as evidence, per table
BEFORE = "before"  # the schema name the earlier copy is attached as


def quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


@dataclass(frozen=True)
class RowChanges:
    """One table's rows before and after, matched by identity.

    identity is "primary key (a, b)", "rowid" or "content"; by content, a changed row
    cannot be told from a lost one and a new one, so it counts as both.
    """

    table: str
    identity: str
    before: int
    after: int
    lost: int
    changed: int
    added: int
    lost_keys: list[str] = field(default_factory=list)
    changed_keys: list[str] = field(default_factory=list)
    # Columns present only on one side (a migration ran): not compared.
    skipped_columns: list[str] = field(default_factory=list)

    @property
    def kept(self) -> int:
        return self.before - self.lost


@dataclass(frozen=True)
class _Shape:
    columns: list[str]  # compared: present on both sides
    key: list[str]  # identity columns; [] means by content
    rowid: bool  # identity is the rowid
    skipped: list[str]


def _columns(conn: GuardedConnection, schema: str, table: str) -> list[tuple[str, int]]:
    """(name, position in the primary key or 0) of the table's stored columns."""
    rows = conn.execute(f"PRAGMA {schema}.table_xinfo({quote(table)})").fetchall()
    # hidden: 0 normal, 1 hidden (virtual tables), 2/3 generated: derived, never compared.
    return [(str(r[1]), int(r[5])) for r in rows if int(r[6]) == 0]


def _has_rowid(conn: GuardedConnection, schema: str, table: str, names: set[str]) -> bool:
    if "rowid" in names:
        return False  # a column shadows it
    try:
        conn.execute(f"SELECT rowid FROM {schema}.{quote(table)} LIMIT 0").fetchall()
    except sqlite3.OperationalError:
        return False  # WITHOUT ROWID
    return True


def _shape(conn: GuardedConnection, table: str) -> _Shape:
    old = _columns(conn, BEFORE, table)
    new = dict(_columns(conn, "main", table))
    common = [name for name, _ in old if name in new]
    skipped = sorted({name for name, _ in old} ^ set(new))
    old_key = [name for name, pk in sorted(old, key=lambda c: c[1]) if pk]
    new_key = sorted((n for n in new if new[n]), key=lambda n: new[n])
    if old_key and old_key == new_key:
        return _Shape(common, old_key, False, skipped)
    names = {name.lower() for name, _ in old} | {n.lower() for n in new}
    if (
        not old_key
        and not new_key
        and _has_rowid(conn, BEFORE, table, names)
        and _has_rowid(conn, "main", table, names)
    ):
        return _Shape(common, ["rowid"], True, skipped)
    return _Shape(common, [], False, skipped)


def _row(prefix: str, columns: list[str]) -> str:
    return "(" + ", ".join(f"{prefix}.{quote(c)}" for c in columns) + ")"


def _count(conn: GuardedConnection, sql: str) -> int:
    return int(conn.execute(sql).fetchone()[0])


def _keys(conn: GuardedConnection, sql: str) -> list[str]:
    return [
        printable(", ".join(str(v) for v in row))[:200]
        for row in conn.execute(sql + f" LIMIT {SAMPLES}").fetchall()
    ]


def _by_key(conn: GuardedConnection, table: str, shape: _Shape) -> RowChanges:
    t_old = f"{BEFORE}.{quote(table)}"
    t_new = f"main.{quote(table)}"
    same_key = " AND ".join(f"n.{quote(k)} IS o.{quote(k)}" for k in shape.key)
    keys = ", ".join(f"o.{quote(k)}" for k in shape.key)
    absent = f"FROM {t_old} AS o WHERE NOT EXISTS (SELECT 1 FROM {t_new} AS n WHERE {same_key})"
    added = f"FROM {t_new} AS o WHERE NOT EXISTS (SELECT 1 FROM {t_old} AS n WHERE {same_key})"
    values = [c for c in shape.columns if c not in shape.key]
    if values:
        changed_from = (
            f"FROM {t_old} AS o JOIN {t_new} AS n ON {same_key} "
            f"WHERE {_row('o', values)} IS NOT {_row('n', values)}"
        )
        changed = _count(conn, f"SELECT count(*) {changed_from}")
        changed_keys = _keys(conn, f"SELECT {keys} {changed_from}") if changed else []
    else:
        changed, changed_keys = 0, []
    lost = _count(conn, f"SELECT count(*) {absent}")
    identity = "rowid" if shape.rowid else f"primary key ({', '.join(shape.key)})"
    return RowChanges(
        table=table,
        identity=identity,
        before=_count(conn, f"SELECT count(*) FROM {t_old}"),
        after=_count(conn, f"SELECT count(*) FROM {t_new}"),
        lost=lost,
        changed=changed,
        added=_count(conn, f"SELECT count(*) {added}"),
        lost_keys=_keys(conn, f"SELECT {keys} {absent}") if lost else [],
        changed_keys=changed_keys,
        skipped_columns=shape.skipped,
    )


def _by_content(conn: GuardedConnection, table: str, shape: _Shape) -> RowChanges:
    """Rows as a multiset of their values: a row is kept while as many copies remain."""
    cols = ", ".join(quote(c) for c in shape.columns) or "1"
    groups = "SELECT {cols}, count(*) AS pa_n FROM {t} GROUP BY {cols}"
    old = groups.format(cols=cols, t=f"{BEFORE}.{quote(table)}")
    new = groups.format(cols=cols, t=f"main.{quote(table)}")
    same = (
        " AND ".join(f"n.{quote(c)} IS o.{quote(c)}" for c in shape.columns)
        if shape.columns
        else "1"
    )
    missing = (
        f"SELECT coalesce(sum(max(o.pa_n - coalesce(n.pa_n, 0), 0)), 0) "
        f"FROM ({old}) AS o LEFT JOIN ({new}) AS n ON {same}"
    )
    before = _count(conn, f"SELECT count(*) FROM {BEFORE}.{quote(table)}")
    after = _count(conn, f"SELECT count(*) FROM main.{quote(table)}")
    lost = _count(conn, missing)
    return RowChanges(
        table=table,
        identity="content",
        before=before,
        after=after,
        lost=lost,
        changed=0,
        added=after - (before - lost),
        skipped_columns=shape.skipped,
    )


@contextmanager
def attached(
    before: Path, after: Path, limits: Limits | None = None
) -> Iterator[GuardedConnection]:
    """One read-only connection with after as main and before attached as BEFORE."""
    conn = open_copy(after, limits)
    try:
        location = urllib.parse.quote(str(before.resolve()))
        try:
            conn.execute(f"ATTACH DATABASE 'file:{location}?mode=rw' AS {BEFORE}")
        except sqlite3.DatabaseError as exc:
            raise SnapshotError(
                f"attaching the copy {before.name}: {sqlite_message(exc)}"
            ) from None
        yield conn
    finally:
        conn.close()


@contextmanager
def _comparing(conn: GuardedConnection, table: str) -> Iterator[None]:
    """One stage of conn's deadline for table; a limit or SQLite's refusal names the table."""
    try:
        with conn.stage():
            yield
    except LimitExceeded as exc:
        raise type(exc)(f"comparing rows of table {printable(table)}: {exc}") from None
    except sqlite3.DatabaseError as exc:
        raise SnapshotError(
            f"comparing rows of table {printable(table)}: {sqlite_message(exc)}"
        ) from None


def compare_rows(conn: GuardedConnection, table: str) -> RowChanges:
    """How table's rows changed between the attached copies (see attached()).

    Raises LimitExceeded when a limit stops the comparison, and SnapshotError when SQLite
    cannot read the table; the caller reports the table as not verified.
    """
    with _comparing(conn, table):
        shape = _shape(conn, table)
        if shape.key:
            return _by_key(conn, table, shape)
        return _by_content(conn, table, shape)


def unchanged_rows(conn: GuardedConnection, table: str, rows: int | None = None) -> RowChanges:
    """RowChanges of a table known to be the same in both copies (the same pages): its
    identity is read as compare_rows does, its rows are counted (unless rows says how many)
    but not compared."""
    with _comparing(conn, table):
        shape = _shape(conn, table)
        if rows is None:
            rows = _count(conn, f"SELECT count(*) FROM main.{quote(table)}")
    if shape.rowid:
        identity = "rowid"
    elif shape.key:
        identity = f"primary key ({', '.join(shape.key)})"
    else:
        identity = "content"
    return RowChanges(table, identity, rows, rows, 0, 0, 0, skipped_columns=shape.skipped)

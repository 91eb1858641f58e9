"""Are the declared constraints really enforced? Probed on a throw-away copy of the database.

With PRAGMA foreign_keys=ON, each probe builds a row that satisfies everything, then breaks
exactly one declared constraint and expects the database to refuse it. A CHECK is tried with
candidate values for which its own expression is false, so "accepted" is a definite finding,
never a guess. Views must answer a query; columns marked json_valid must hold valid JSON.

The database is untrusted: its triggers, views and CHECKs run here. Every statement has a
deadline and a length limit (sqlite_guard); a probe stopped by one is inconclusive, the rest
of its table's probes are not tried (an interrupted write undoes the rows they build on),
and the other tables' probes go on.
"""

from __future__ import annotations

import re
import sqlite3
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from persistaudit import sqltext
from persistaudit.exceptions import LimitExceeded
from persistaudit.manifest import Manifest, Table
from persistaudit.snapshot import Budget
from persistaudit.sqlite_files import copy_database, database_files
from persistaudit.sqlite_guard import GuardedConnection, Limits, open_copy

Outcome = Literal["enforced", "not enforced", "inconclusive", "ok", "failed"]
BAD_VALUES: list[Any] = [-1, 0, -999_999_999, "persistaudit-invalid", "", 10**18, "x" * 10_000, 1.5]
MISSING_PARENT: list[Any] = [-424_242, "persistaudit-missing-parent"]


@dataclass(frozen=True)
class Probe:
    kind: Literal["foreign_key", "unique", "check", "view", "json"]
    target: str
    outcome: Outcome
    detail: str
    stopped: bool = False  # inconclusive because a time or size limit stopped it

    @property
    def failed(self) -> bool:
        return self.outcome in ("not enforced", "failed")


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class _Rows:
    """Builds rows that satisfy a table's constraints, creating parent rows as needed."""

    def __init__(self, conn: GuardedConnection, manifest: Manifest) -> None:
        self.conn = conn
        self.manifest = manifest
        self.serial = 0

    def columns(self, table: str) -> list[tuple[str, str, bool, bool, int]]:
        """(name, type, not null, has default, pk) of insertable columns."""
        return [
            (r[1], (r[2] or "").upper(), bool(r[3]), r[4] is not None, int(r[5]))
            for r in self.conn.execute(f"PRAGMA table_xinfo({_q(table)})")
            if int(r[6]) == 0
        ]

    def fresh_value(self, ctype: str) -> Any:
        self.serial += 1
        if "INT" in ctype:
            return 900_000_000 + self.serial
        if any(t in ctype for t in ("REAL", "FLOA", "DOUB")):
            return 900_000_000.5 + self.serial
        if "BLOB" in ctype:
            return b"\x00" + self.serial.to_bytes(4, "big")
        return f"persistaudit-probe-{self.serial}"

    def build(self, table: str, depth: int = 0) -> dict[str, Any] | None:
        """A row for table that inserts cleanly (checked in a savepoint), or None."""
        spec = self.manifest.tables.get(table) or Table()
        row: dict[str, Any] = {}
        columns = self.columns(table)
        pk_cols = [c for c in columns if c[4]]
        for name, ctype, _not_null, has_default, pk in columns:
            if has_default or (pk and len(pk_cols) == 1 and "INT" in ctype):
                continue  # the default, or the rowid alias
            row[name] = self.fresh_value(ctype)
        for fk in self._foreign_keys(table):
            parent = self._parent_values(fk["table"], fk["to"], depth)
            if parent is None:
                return None
            row.update(dict(zip(fk["columns"], parent, strict=False)))
        for _ in range(8):
            error = self.try_insert(table, row)
            if error is None:
                return row
            if not self._repair(spec, row, error):
                return None
        return None

    def _foreign_keys(self, table: str) -> list[dict[str, Any]]:
        fks: dict[int, dict[str, Any]] = {}
        for r in self.conn.execute(f"PRAGMA foreign_key_list({_q(table)})"):
            fk = fks.setdefault(r[0], {"table": r[2], "columns": [], "to": []})
            fk["columns"].append(r[3])
            fk["to"].append(r[4])
        return list(fks.values())

    def _parent_values(self, parent: str, to: list[str | None], depth: int) -> list[Any] | None:
        if None in to:
            to = [r[1] for r in self.conn.execute(f"PRAGMA table_info({_q(parent)})") if r[5]]
            to = to or ["rowid"]
        cols = ", ".join(_q(str(c)) for c in to)
        try:
            found = self.conn.execute(f"SELECT {cols} FROM {_q(parent)} LIMIT 1").fetchone()
        except sqlite3.Error:
            return None
        if found is not None:
            return list(found)
        row = self.build(parent, depth + 1) if depth <= 4 else None
        if row is None:
            return None
        self.insert(parent, row)
        found = self.conn.execute(f"SELECT {cols} FROM {_q(parent)} LIMIT 1").fetchone()
        return list(found) if found else None

    def _repair(self, spec: Table, row: dict[str, Any], error: str) -> bool:
        """Adjust a row after a CHECK or UNIQUE refusal; False when there is nothing to try."""
        if "UNIQUE" in error:
            for col in re.findall(r"\.(\w+)", error):
                if col in row:
                    row[col] = self.fresh_value("INT" if isinstance(row[col], int) else "TEXT")
            return True
        if "CHECK" in error:
            for check in spec.checks:
                for col in _columns_in(check, row):
                    for literal in _literals(check):
                        if _holds(self.conn, check, {**row, col: literal}):
                            row[col] = literal
                            return True
        return False

    def try_insert(self, table: str, row: dict[str, Any]) -> str | None:
        with savepoint(self.conn):
            try:
                self.insert(table, row)
            except sqlite3.DatabaseError as exc:
                return str(exc)
            return None
        return None

    def insert(self, table: str, row: dict[str, Any]) -> None:
        if row:
            cols = ", ".join(_q(c) for c in row)
            marks = ", ".join("?" for _ in row)
            sql = f"INSERT INTO {_q(table)} ({cols}) VALUES ({marks})"
            self.conn.execute(sql, list(row.values()))
        else:
            self.conn.execute(f"INSERT INTO {_q(table)} DEFAULT VALUES")


@contextmanager
def savepoint(conn: sqlite3.Connection) -> Iterator[None]:
    conn.execute("SAVEPOINT probe")
    try:
        yield
    finally:
        # An interrupted write (a deadline) has already rolled back the whole transaction.
        if conn.in_transaction:
            conn.execute("ROLLBACK TO probe")
            conn.execute("RELEASE probe")


def _columns_in(expression: str, row: dict[str, Any]) -> list[str]:
    words = {t.text for t in sqltext.tokens(expression) if t.kind == "word"}
    return [c for c in row if c.lower() in words]


def _literals(expression: str) -> list[Any]:
    out: list[Any] = []
    for tok in sqltext.tokens(expression):
        if tok.kind == "string":
            out.append(tok.text[1:-1].replace("''", "'"))
        elif tok.kind == "number":
            out.append(float(tok.text) if "." in tok.text or "e" in tok.text else int(tok.text))
    return out


def _holds(conn: GuardedConnection, check: str, row: dict[str, Any]) -> bool | None:
    """The CHECK expression's value for this row: True, False, or None (NULL or unknown)."""
    cols = ", ".join(f"? AS {_q(c)}" for c in row) or "NULL AS _"
    try:
        value = conn.execute(
            f"SELECT ({check}) FROM (SELECT {cols})", list(row.values())
        ).fetchone()
    except sqlite3.Error:
        return None
    return None if value is None or value[0] is None else bool(value[0])


def probe(db_file: Path, manifest: Manifest, limits: Limits | None = None) -> list[Probe]:
    """Probe every constraint the manifest declares, on a copy of db_file (and its companions).

    The copy keeps a -wal or a hot -journal, so the probes see the last committed state.
    Raises DatabaseTooLarge when the disk has no room for the copy.
    """
    with tempfile.TemporaryDirectory(prefix="persistaudit-probe-") as tmp:
        copy = Path(tmp) / "probe.db"
        Budget(Path(tmp), sys.maxsize).reserve(
            "a throw-away copy of the database for the constraint probes",
            sum(source.stat().st_size for source in database_files(db_file)),
        )
        copy_database(db_file, copy)
        conn = open_copy(copy, limits, writable=True)
        try:
            conn.execute("PRAGMA foreign_keys = ON")
            return _probe_all(conn, manifest)
        finally:
            conn.close()


def _probe_all(conn: GuardedConnection, manifest: Manifest) -> list[Probe]:
    have = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    rows = _Rows(conn, manifest)
    out: list[Probe] = []
    conn.execute("BEGIN")
    try:
        for name in sorted(manifest.tables):
            if name not in have or manifest.ignored(name):
                continue  # a missing table is the schema check's finding
            out += _probe_table(conn, rows, manifest, name, manifest.tables[name])
        for name in sorted(manifest.views):
            out.append(_probe_view(conn, name))
    finally:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
    return out


def _probe_view(conn: GuardedConnection, name: str) -> Probe:
    try:
        conn.execute(f"SELECT * FROM {_q(name)} LIMIT 1").fetchall()
    except LimitExceeded as exc:
        return Probe("view", name, "inconclusive", f"SELECT *: {exc}", stopped=True)
    except sqlite3.Error as exc:
        return Probe("view", name, "failed", f"SELECT * fails: {exc}")
    return Probe("view", name, "ok", "SELECT * answers")


def _unique_groups(manifest: Manifest, name: str, spec: Table) -> list[list[str]]:
    """UNIQUE constraints and unique (non-partial, plain-column) indexes of a table."""
    groups = [list(u) for u in spec.unique]
    for index in manifest.indexes.values():
        plain = all(
            sqltext.tokens(c)[0].kind == "word" and len(sqltext.tokens(c)) == 1
            for c in index.columns
        )
        if index.table == name and index.unique and index.where is None and plain:
            groups.append(list(index.columns))
    return groups


def _probe_table(
    conn: GuardedConnection, rows: _Rows, manifest: Manifest, name: str, spec: Table
) -> list[Probe]:
    """The table's probes in planned order; any a limit stopped or kept from running are
    inconclusive, with stopped set."""
    uniques = _unique_groups(manifest, name, spec)
    planned: list[tuple[Any, str]] = [
        ("json", f"{name}.{c.name}") for c in spec.columns if c.json_valid
    ]
    planned += (
        [("foreign_key", fk.label(name)) for fk in spec.foreign_keys]
        + [("unique", f"{name}: UNIQUE({', '.join(u)})") for u in uniques]
        + [("check", f"{name}: CHECK({c})") for c in spec.checks]
    )
    out: list[Probe] = []
    try:
        _run_table_probes(conn, rows, name, spec, uniques, planned, out)
    except LimitExceeded as exc:
        first, *rest = planned[len(out) :]
        out.append(Probe(first[0], first[1], "inconclusive", str(exc), stopped=True))
        out += [
            Probe(
                kind, target, "inconclusive", "not tried: a limit stopped a probe before it", True
            )
            for kind, target in rest
        ]
        if not conn.in_transaction:
            conn.execute("BEGIN")  # an interrupted write rolled it back
    return out


def _run_table_probes(
    conn: GuardedConnection,
    rows: _Rows,
    name: str,
    spec: Table,
    uniques: list[list[str]],
    planned: list[tuple[Any, str]],
    out: list[Probe],
) -> None:
    """Append the probes of planned to out, in order."""
    for column in (c for c in spec.columns if c.json_valid):
        bad = conn.execute(
            f"SELECT count(*) FROM {_q(name)} WHERE {_q(column.name)} IS NOT NULL"
            f" AND NOT json_valid({_q(column.name)})"
        ).fetchone()[0]
        target = f"{name}.{column.name}"
        if bad:
            out.append(Probe("json", target, "failed", f"{bad} row(s) hold invalid JSON"))
        else:
            out.append(Probe("json", target, "ok", "every value is valid JSON"))
    if len(out) == len(planned):
        return
    base = rows.build(name)
    if base is None:
        out += [
            Probe(kind, target, "inconclusive", "could not build a valid row to start from")
            for kind, target in planned[len(out) :]
        ]
        return
    for fk in spec.foreign_keys:
        out.append(_probe_fk(rows, name, base, fk.columns, fk.label(name)))
    keys = {c for group in uniques for c in group} | set(spec.primary_key)
    for cols in uniques:
        out.append(_probe_unique(rows, name, base, cols, keys))
    for check in spec.checks:
        out.append(_probe_check(rows, name, base, check))


def _refused(rows: _Rows, table: str, row: dict[str, Any], word: str) -> tuple[bool, str]:
    error = rows.try_insert(table, row)
    return (error is not None and word in error.upper()), error or "accepted"


def _probe_fk(rows: _Rows, table: str, base: dict[str, Any], cols: list[str], label: str) -> Probe:
    last = ""
    for value in MISSING_PARENT:
        refused, last = _refused(rows, table, {**base, **dict.fromkeys(cols, value)}, "FOREIGN KEY")
        if refused:
            return Probe("foreign_key", label, "enforced", f"a row pointing at no parent: {last}")
        if last == "accepted":
            return Probe(
                "foreign_key", label, "not enforced", "a row pointing at no parent was accepted"
            )
    return Probe(
        "foreign_key",
        label,
        "inconclusive",
        f"a row pointing at no parent was refused for another reason: {last}",
    )


def _probe_unique(
    rows: _Rows, table: str, base: dict[str, Any], cols: list[str], keys: set[str]
) -> Probe:
    """Insert the base row, then a twin equal on cols and fresh on every other key column."""
    label = f"{table}: UNIQUE({', '.join(cols)})"
    with savepoint(rows.conn):
        rows.insert(table, base)
        twin = dict(base)
        for key in keys - set(cols):
            if key in twin:
                twin[key] = rows.fresh_value("INT" if isinstance(twin[key], int) else "TEXT")
        error = rows.try_insert(table, twin)
    if error is None:
        return Probe(
            "unique", label, "not enforced", "a second row with the same values was accepted"
        )
    named = [f"{table}.{c}" for c in cols]
    if "UNIQUE" in error.upper() and all(n in error for n in named):
        return Probe("unique", label, "enforced", f"a second row with the same values: {error}")
    return Probe(
        "unique", label, "inconclusive", f"the twin row was refused for another reason: {error}"
    )


def _probe_check(rows: _Rows, table: str, base: dict[str, Any], check: str) -> Probe:
    label = f"{table}: CHECK({check})"
    all_cols = {c[0]: None for c in rows.columns(table)}
    other = ""  # a violating row refused for a reason other than the CHECK proves nothing
    for col in _columns_in(check, {**all_cols, **base}):
        for value in BAD_VALUES:
            row = {**base, col: value}
            if _holds(rows.conn, check, {**all_cols, **row}) is not False:
                continue  # the expression does not refuse this value: no verdict from it
            refused, detail = _refused(rows, table, row, "CHECK")
            shown = repr(value) if len(repr(value)) < 40 else repr(value)[:37] + "..."
            if refused:
                return Probe("check", label, "enforced", f"{col}={shown} refused")
            if detail == "accepted":
                return Probe(
                    "check", label, "not enforced", f"{col}={shown} violates it, yet was accepted"
                )
            other = (
                other or f"{col}={shown} violates it and was refused for another reason: {detail}"
            )
    return Probe(
        "check", label, "inconclusive", other or "no candidate value violates the expression"
    )

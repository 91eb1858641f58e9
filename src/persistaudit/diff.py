"""Compare two schemas exactly: what a release promises against what a fresh install made.

Pure functions over manifests. What means the same in SQLite is the same here: names are
compared as SQLite compares them (ASCII case-insensitively), and SQL text, defaults and
index keys in their canonical form (sqltext), so a manifest written by an older version
still means what it said. Every real difference is reported once. The indexes and triggers
of a table that is missing or unexpected as a whole are not reported again on their own.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from operator import attrgetter
from typing import Any, Literal

from persistaudit import sqltext
from persistaudit.display import printable
from persistaudit.manifest import Column, ForeignKey, Index, Manifest, Table
from persistaudit.sqltext import fold

Kind = Literal["missing", "unexpected", "changed"]
ObjectType = Literal[
    "table", "column", "index", "view", "trigger", "foreign_key", "check", "pragma"
]
COLUMN_FIELDS = ("type", "not_null", "default", "collation", "pk", "generated")
TABLE_FIELDS = ("primary_key", "without_rowid", "strict", "autoincrement")
INDEX_FIELDS = ("table", "columns", "unique", "where")
_column_key = attrgetter(*COLUMN_FIELDS)  # one C-level call: most columns are unchanged
# The canonical form of a column field where a plain comparison is too strict.
_COLUMN_CANON: dict[str, Callable[[Any], Any]] = {
    "type": sqltext.normalize_type,
    "default": sqltext.normalize_default,
}
SQL_OBJECTS = ("view", "trigger", "check")  # whose expected/actual are SQL text
SQL_FIELDS = ("columns", "where", "default")  # fields shown as a word diff


@dataclass(frozen=True)
class Difference:
    kind: Kind
    object: ObjectType
    name: str
    expected: Any = None
    actual: Any = None
    table: str = ""  # the table it belongs to, for grouping ("" for views and pragmas)

    def describe(self) -> str:
        """One line, whatever the names hold: control characters are escaped."""
        if self.kind != "changed":
            return printable(f"{self.kind} {self.object} {self.name}")
        return printable(f"changed {self.object} {self.name}: {self.change()}")

    def change(self) -> str:
        """What changed, on one line: `type: expected TEXT, found INTEGER`, or the SQL as a
        word diff, [-expected-]{+found+}: `select a, [-b-]{+c+} from t`. Not escaped:
        describe() and the report do that."""
        if isinstance(self.expected, dict) and isinstance(self.actual, dict):
            return "; ".join(
                f"{k}: {_field_change(k, self.expected[k], self.actual.get(k))}"
                for k in self.expected
            )
        if self.object in SQL_OBJECTS and isinstance(self.expected, str):
            return sqltext.word_diff(self.expected, str(self.actual))
        return f"expected {show_value(self.expected)}, found {show_value(self.actual)}"

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("table")
        return data


def show_value(value: Any) -> str:
    """A field's value as the report and the text output show it."""
    if value is None:
        return "(none)"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list):
        return "[" + ", ".join(str(v) for v in value) + "]"
    return str(value)


def _field_change(field: str, old: Any, new: Any) -> str:
    if field in SQL_FIELDS and old is not None and new is not None:
        if isinstance(old, list):
            return sqltext.word_diff(", ".join(old), ", ".join(new))
        return sqltext.word_diff(str(old), str(new))
    return f"expected {show_value(old)}, found {show_value(new)}"


@dataclass(frozen=True)
class TableDiff:
    """Table counts for the report's metrics."""

    expected: list[str]
    present: list[str]
    missing: list[str]
    unexpected: list[str]
    extra_allowed: bool

    @property
    def ok(self) -> bool:
        return not self.missing and (self.extra_allowed or not self.unexpected)


def diff_tables(expected: Manifest, actual: Manifest) -> TableDiff:
    want = sorted(n for n in expected.tables if not expected.ignored(n))
    have = {fold(n): n for n in actual.tables if not expected.ignored(n)}
    known = {fold(n) for n in expected.tables}
    return TableDiff(
        expected=want,
        present=[n for n in want if fold(n) in have],
        missing=[n for n in want if fold(n) not in have],
        unexpected=sorted(n for k, n in have.items() if k not in known),
        extra_allowed=expected.options.allow_extra_tables,
    )


def _by_name(objects: dict[str, Any]) -> dict[str, tuple[str, Any]]:
    """Objects keyed by their name as SQLite compares it, with the name as written."""
    return {fold(name): (name, obj) for name, obj in objects.items()}


def diff(expected: Manifest, actual: Manifest) -> list[Difference]:
    """Every difference between the expected schema and the actual one, in a stable order."""
    out: list[Difference] = []
    skip = expected.ignored
    gone: set[str] = set()  # folded names of tables missing or unexpected as a whole
    want_tables, have_tables = _by_name(expected.tables), _by_name(actual.tables)
    shown = {k: n for k, (n, _) in have_tables.items()} | {
        k: n for k, (n, _) in want_tables.items()
    }

    for key in sorted(set(want_tables) | set(have_tables)):
        name = shown[key]
        if skip(name):
            continue
        want, have = want_tables.get(key), have_tables.get(key)
        if have is None:
            gone.add(key)
            out.append(Difference("missing", "table", name, table=name))
        elif want is None:
            gone.add(key)
            if not expected.options.allow_extra_tables:
                out.append(Difference("unexpected", "table", name, table=name))
        else:
            out += _table(name, want[1], have[1])

    def table_of(obj: Any) -> str:
        table = str(getattr(obj, "table", ""))
        return shown.get(fold(table), table)

    own_a, own_b = _Collations(expected), _Collations(actual)
    out += _named(
        "index",
        expected.indexes,
        actual.indexes,
        gone,
        skip,
        table_of,
        lambda a, b: _index_changes(a, b, own_a, own_b),
    )
    out += _named(
        "view", expected.views, actual.views, set(), skip, table_of, lambda a, b: _sql(a, b)
    )
    out += _named(
        "trigger", expected.triggers, actual.triggers, gone, skip, table_of, lambda a, b: _sql(a, b)
    )
    out += _pragmas(expected, actual)
    return out


def _sql(a: Any, b: Any) -> tuple[Any, Any] | None:
    """A view's or trigger's SQL when it differs in meaning, else None."""
    if a.sql == b.sql:
        return None
    old, new = sqltext.normalize(a.sql), sqltext.normalize(b.sql)
    return None if old == new else (old, new)


def _named(
    kind: ObjectType,
    want: dict[str, Any],
    have: dict[str, Any],
    gone: set[str],
    skip: Callable[[str], bool],
    table_of: Callable[[Any], str],
    compare: Callable[[Any, Any], tuple[Any, Any] | None],
) -> list[Difference]:
    out = []
    want_by, have_by = _by_name(want), _by_name(have)
    for key in sorted(set(want_by) | set(have_by)):
        a, b = want_by.get(key), have_by.get(key)
        name, obj = a or b  # type: ignore[misc]
        table = table_of(obj)
        if skip(name) or fold(table) in gone:
            continue
        if b is None:
            out.append(Difference("missing", kind, name, table=table))
        elif a is None:
            out.append(Difference("unexpected", kind, name, table=table))
        else:
            changed = compare(a[1], b[1])
            if changed is not None:
                out.append(Difference("changed", kind, name, *changed, table=table))
    return out


class _Collations:
    """A table's columns' collations (folded names), looked up only when an index needs them."""

    def __init__(self, manifest: Manifest) -> None:
        self.manifest = manifest
        self.tables: dict[str, Table] | None = None

    def get(self, table: str) -> dict[str, str]:
        if self.tables is None:
            self.tables = {fold(n): t for n, t in self.manifest.tables.items()}
        found = self.tables.get(fold(table))
        return {fold(c.name): c.collation for c in found.columns} if found else {}


def _index_changes(
    a: Index, b: Index, own_a: _Collations, own_b: _Collations
) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """Only the fields of an index that changed in meaning, in canonical form."""
    old, new = {}, {}
    for field in INDEX_FIELDS:
        x, y = getattr(a, field), getattr(b, field)
        if x == y:
            continue
        if field == "table":
            same = fold(x) == fold(y)
        elif field == "columns":
            x = [sqltext.index_key(c, own_a.get(a.table)) for c in x]
            y = [sqltext.index_key(c, own_b.get(b.table)) for c in y]
            same = x == y
        elif field == "where":
            x, y = sqltext.normalize(x), sqltext.normalize(y)
            same = x == y
        else:
            same = False
        if not same:
            old[field], new[field] = x, y
    return (old, new) if old else None


def _table(name: str, want: Table, have: Table) -> list[Difference]:
    out: list[Difference] = []
    cols_a = {fold(c.name): c for c in want.columns}
    cols_b = {fold(c.name): c for c in have.columns}
    for key in sorted(set(cols_a) | set(cols_b)):
        a, b = cols_a.get(key), cols_b.get(key)
        label = f"{name}.{(a or b).name}"  # type: ignore[union-attr]
        if b is None:
            out.append(Difference("missing", "column", label, table=name))
        elif a is None:
            out.append(Difference("unexpected", "column", label, table=name))
        else:
            changed = _column_changes(a, b)
            if changed:
                out.append(_changed("column", label, a, b, changed, name))
    changed_attrs = [k for k in TABLE_FIELDS if _norm(getattr(want, k)) != _norm(getattr(have, k))]
    # A primary key moves with its columns: report it apart only when they all still exist.
    pk_columns_moved = any(fold(c) not in cols_b for c in want.primary_key) or any(
        fold(c) not in cols_a for c in have.primary_key
    )
    if "primary_key" in changed_attrs and pk_columns_moved:
        changed_attrs.remove("primary_key")
    if changed_attrs:
        out.append(_changed("table", name, want, have, changed_attrs, name))
    out += _uniques(name, want, have)
    out += _checks(name, want, have)
    out += _foreign_keys(name, want.foreign_keys, have.foreign_keys)
    return out


def _changed(
    obj: ObjectType, name: str, a: Any, b: Any, fields: list[str], table: str
) -> Difference:
    """A changed object, showing only the fields that differ."""
    return Difference(
        "changed",
        obj,
        name,
        {k: getattr(a, k) for k in fields},
        {k: getattr(b, k) for k in fields},
        table=table,
    )


def _norm(value: Any) -> Any:
    if isinstance(value, list):
        return [fold(v) if isinstance(v, str) else v for v in value]
    return value


def _column_changes(a: Column, b: Column) -> list[str]:
    if _column_key(a) == _column_key(b):
        return []
    out = []
    for k in COLUMN_FIELDS:
        old, new = getattr(a, k), getattr(b, k)
        canon = _COLUMN_CANON.get(k)
        if old != new and (canon is None or canon(old) != canon(new)):
            out.append(k)
    return out


# A UNIQUE constraint: its folded columns, and the collations it uses where they differ
# from the columns' own (a manifest may spell out one that does not differ).
UniqueKey = tuple[tuple[str, ...], tuple[tuple[str, str], ...]]


def _unique_keys(table: Table, own: dict[str, str]) -> list[UniqueKey]:
    pending = list(table.unique_collations)
    out = []
    for unique in table.unique:
        columns = tuple(fold(c) for c in unique)
        entry = next((e for e in pending if tuple(fold(c) for c in e.columns) == columns), None)
        differ: dict[str, str] = {}
        if entry is not None:
            pending.remove(entry)
            differ = {
                fold(c): coll
                for c, coll in entry.collations.items()
                if coll != own.get(fold(c), sqltext.DEFAULT_COLLATION)
            }
        out.append((columns, tuple(sorted(differ.items()))))
    return out


def _unique_label(table: str, key: UniqueKey) -> str:
    differ = dict(key[1])
    keys = [f"{c} collate {differ[c].lower()}" if c in differ else c for c in key[0]]
    return f"{table}: UNIQUE({', '.join(keys)})"


def _uniques(table: str, want: Table, have: Table) -> list[Difference]:
    """UNIQUE constraints; one whose columns stay and whose collation changed is a change."""
    if want.unique == have.unique and want.unique_collations == have.unique_collations:
        return []
    own_a = {fold(c.name): c.collation for c in want.columns}
    own_b = {fold(c.name): c.collation for c in have.columns}
    a, b = Counter(_unique_keys(want, own_a)), Counter(_unique_keys(have, own_b))
    missing, unexpected = sorted((a - b).elements()), sorted((b - a).elements())
    out = []
    for key in missing:
        twins = [k for k in unexpected if k[0] == key[0]]
        if len(twins) == 1 and sum(k[0] == key[0] for k in missing) == 1:
            unexpected.remove(twins[0])
            before, after = dict(key[1]), dict(twins[0][1])
            columns = [c for c in key[0] if before.get(c) != after.get(c)]
            out.append(
                Difference(
                    "changed",
                    "index",
                    f"{table}: UNIQUE({', '.join(key[0])})",
                    {"collation": _effective(columns, before, own_a)},
                    {"collation": _effective(columns, after, own_b)},
                    table=table,
                )
            )
        else:
            out.append(Difference("missing", "index", _unique_label(table, key), table=table))
    out += [
        Difference("unexpected", "index", _unique_label(table, key), table=table)
        for key in unexpected
    ]
    return out


def _effective(columns: list[str], differ: dict[str, str], own: dict[str, str]) -> str:
    """The collation a UNIQUE uses for each of columns: its own, or the column's."""
    return ", ".join(f"{c} {differ.get(c, own.get(c, sqltext.DEFAULT_COLLATION))}" for c in columns)


def _checks(table: str, want: Table, have: Table) -> list[Difference]:
    """CHECK constraints. A missing and an unexpected one over the same columns, alone of
    their kind, are one changed CHECK, shown as a word diff."""
    if want.checks == have.checks:
        return []
    raw_a, raw_b = Counter(want.checks), Counter(have.checks)
    old = Counter(sqltext.normalize(c) or "" for c in (raw_a - raw_b).elements())
    new = Counter(sqltext.normalize(c) or "" for c in (raw_b - raw_a).elements())
    missing, unexpected = sorted((old - new).elements()), sorted((new - old).elements())
    columns = {fold(c.name) for c in [*want.columns, *have.columns]}

    def over(check: str) -> tuple[str, ...]:
        names = sqltext.tokens(check)
        words = {fold(sqltext.name_of(t)) for t in names if t.kind in ("word", "ident")}
        return tuple(sorted(words & columns))

    groups_a = Counter(over(c) for c in missing)
    groups_b = Counter(over(c) for c in unexpected)
    out = []
    for check in missing:
        cols = over(check)
        if groups_a[cols] == 1 and groups_b[cols] == 1:
            twin = next(c for c in unexpected if over(c) == cols)
            unexpected.remove(twin)
            label = f"{table}: CHECK on {', '.join(cols)}" if cols else f"{table}: CHECK"
            out.append(Difference("changed", "check", label, check, twin, table=table))
        else:
            out.append(Difference("missing", "check", f"{table}: CHECK({check})", table=table))
    out += [
        Difference("unexpected", "check", f"{table}: CHECK({c})", table=table) for c in unexpected
    ]
    return out


def _foreign_keys(table: str, want: list[ForeignKey], have: list[ForeignKey]) -> list[Difference]:
    a = {fk.key: fk for fk in want}
    b = {fk.key: fk for fk in have}
    out = []
    for key in sorted(set(a) | set(b)):
        x, y = a.get(key), b.get(key)
        if y is None:
            assert x is not None
            out.append(Difference("missing", "foreign_key", x.label(table), table=table))
        elif x is None:
            out.append(Difference("unexpected", "foreign_key", y.label(table), table=table))
        else:
            fields = ("to", "on_delete", "on_update")
            changed = [f for f in fields if _norm(getattr(x, f)) != _norm(getattr(y, f))]
            if changed:
                out.append(_changed("foreign_key", x.label(table), x, y, changed, table))
    return out


def _pragmas(expected: Manifest, actual: Manifest) -> list[Difference]:
    out = []
    opts = expected.options
    if opts.user_version is not None and actual.user_version != opts.user_version:
        out.append(
            Difference("changed", "pragma", "user_version", opts.user_version, actual.user_version)
        )
    if opts.alembic_revision is not None and actual.alembic_revision != opts.alembic_revision:
        out.append(
            Difference(
                "changed",
                "pragma",
                "alembic_revision",
                opts.alembic_revision,
                actual.alembic_revision,
            )
        )
    if opts.min_tables is not None:
        count = sum(1 for n in actual.tables if not expected.ignored(n))
        if count < opts.min_tables:
            out.append(
                Difference("changed", "pragma", "table_count", f">= {opts.min_tables}", count)
            )
    return out


def group_by_table(differences: Iterable[Difference]) -> dict[str, list[Difference]]:
    """For the text output: each table's differences together; views and pragmas last."""
    groups: dict[str, list[Difference]] = {}
    for d in sorted(differences, key=lambda d: (d.table == "", fold(d.table))):
        groups.setdefault(d.table or f"({d.object}s)", []).append(d)
    return groups

"""Compare two schemas exactly: what a release promises against what a fresh install made.

Pure functions over manifests. Cosmetic differences are gone already (sqltext normalizes);
every real one is reported once. The indexes and triggers of a table that is missing or
unexpected as a whole are not reported again on their own.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from operator import attrgetter
from typing import Any, Literal

from persistaudit.manifest import Column, ForeignKey, Manifest

Kind = Literal["missing", "unexpected", "changed"]
ObjectType = Literal[
    "table", "column", "index", "view", "trigger", "foreign_key", "check", "pragma"
]
COLUMN_FIELDS = ("type", "not_null", "default", "pk", "generated")
_column_key = attrgetter(*COLUMN_FIELDS)  # one C-level call: most columns are unchanged


@dataclass(frozen=True)
class Difference:
    kind: Kind
    object: ObjectType
    name: str
    expected: Any = None
    actual: Any = None
    table: str = ""  # the table it belongs to, for grouping ("" for views and pragmas)

    def describe(self) -> str:
        if self.kind == "missing":
            return f"missing {self.object} {self.name}"
        if self.kind == "unexpected":
            return f"unexpected {self.object} {self.name}"
        return f"{self.object} {self.name}: expected {self.expected}, found {self.actual}"

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("table")
        return data


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
    have = {n for n in actual.tables if not expected.ignored(n)}
    return TableDiff(
        expected=want,
        present=[n for n in want if n in have],
        missing=[n for n in want if n not in have],
        unexpected=sorted(have - set(expected.tables)),
        extra_allowed=expected.options.allow_extra_tables,
    )


def diff(expected: Manifest, actual: Manifest) -> list[Difference]:
    """Every difference between the expected schema and the actual one, in a stable order."""
    out: list[Difference] = []
    skip = expected.ignored
    gone: set[str] = set()  # tables missing or unexpected as a whole

    for name in sorted(set(expected.tables) | set(actual.tables)):
        if skip(name):
            continue
        want, have = expected.tables.get(name), actual.tables.get(name)
        if have is None:
            gone.add(name)
            out.append(Difference("missing", "table", name, table=name))
        elif want is None:
            gone.add(name)
            if not expected.options.allow_extra_tables:
                out.append(Difference("unexpected", "table", name, table=name))
        else:
            out += _table(name, want, have)

    out += _named(
        "index",
        expected.indexes,
        actual.indexes,
        gone,
        skip,
        lambda i: i.model_dump(exclude_defaults=False),
    )
    out += _named("view", expected.views, actual.views, set(), skip, lambda v: v.sql)
    out += _named("trigger", expected.triggers, actual.triggers, gone, skip, lambda t: t.sql)
    out += _pragmas(expected, actual)
    return out


def _named(
    kind: ObjectType,
    want: dict[str, Any],
    have: dict[str, Any],
    gone: set[str],
    skip: Any,
    value: Any,
) -> list[Difference]:
    out = []
    for name in sorted(set(want) | set(have)):
        a, b = want.get(name), have.get(name)
        table = getattr(a or b, "table", "")
        if skip(name) or table in gone:
            continue
        if b is None:
            out.append(Difference("missing", kind, name, table=table))
        elif a is None:
            out.append(Difference("unexpected", kind, name, table=table))
        elif value(a) != value(b):
            out.append(Difference("changed", kind, name, value(a), value(b), table=table))
    return out


def _table(name: str, want: Any, have: Any) -> list[Difference]:
    out: list[Difference] = []
    cols_a = {c.name.lower(): c for c in want.columns}
    cols_b = {c.name.lower(): c for c in have.columns}
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
    table_attrs = ("primary_key", "without_rowid", "strict")
    changed_attrs = [k for k in table_attrs if _norm(getattr(want, k)) != _norm(getattr(have, k))]
    # A primary key moves with its columns: report it apart only when they all still exist.
    pk_columns_moved = any(c.lower() not in cols_b for c in want.primary_key) or any(
        c.lower() not in cols_a for c in have.primary_key
    )
    if "primary_key" in changed_attrs and pk_columns_moved:
        changed_attrs.remove("primary_key")
    if changed_attrs:
        out.append(_changed("table", name, want, have, changed_attrs, name))
    out += _sets("index", name, _uniques(want.unique), _uniques(have.unique), "UNIQUE")
    out += _sets("check", name, set(want.checks), set(have.checks), "CHECK")
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
        return [v.lower() if isinstance(v, str) else v for v in value]
    return value


def _column_changes(a: Column, b: Column) -> list[str]:
    if _column_key(a) == _column_key(b):
        return []
    return [k for k in COLUMN_FIELDS if getattr(a, k) != getattr(b, k)]


def _uniques(groups: Iterable[list[str]]) -> set[str]:
    return {", ".join(c.lower() for c in g) for g in groups}


def _sets(
    kind: ObjectType, table: str, want: set[str], have: set[str], word: str
) -> list[Difference]:
    out = [
        Difference("missing", kind, f"{table}: {word}({x})", table=table)
        for x in sorted(want - have)
    ]
    out += [
        Difference("unexpected", kind, f"{table}: {word}({x})", table=table)
        for x in sorted(have - want)
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


def group_by_table(differences: list[Difference]) -> dict[str, list[Difference]]:
    """For the text output: each table's differences together; views and pragmas last."""
    groups: dict[str, list[Difference]] = {}
    for d in sorted(differences, key=lambda d: (d.table == "", d.table)):
        groups.setdefault(d.table or f"({d.object}s)", []).append(d)
    return groups

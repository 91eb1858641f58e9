"""Property tests of snapshot and diff over generated schemas (hypothesis)."""

from __future__ import annotations

import copy
import sqlite3
from dataclasses import dataclass, field

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from persistaudit.diff import diff
from persistaudit.manifest import Manifest, dump_manifest, from_data
from persistaudit.schema import read_schema

TYPES = ["INTEGER", "TEXT", "REAL", "BLOB"]
COLLATIONS = ["BINARY", "NOCASE", "RTRIM"]
# CHECK expressions and partial-index conditions, each with a constant a mutation changes.
CHECKS = ["{c} != 'x'", "length({c}) < 10"]
WHERES = ["{c} != 'x'", "{c} IS NOT NULL"]


@dataclass
class Col:
    name: str
    type: str
    not_null: bool = False
    default: str | None = None
    ref: str | None = None  # parent table (its id)
    collate: str | None = None  # None: no COLLATE clause (BINARY)
    check: str | None = None  # a column-level CHECK, one of CHECKS with {c} filled in later


@dataclass
class Unique:
    cols: list[str]
    collate: str | None = None  # COLLATE of the first column inside the constraint


@dataclass
class Tbl:
    name: str
    cols: list[Col]
    autoincrement: bool = False
    unique: Unique | None = None

    def col(self, name: str) -> Col:
        return next(c for c in self.cols if c.name == name)


@dataclass
class Idx:
    name: str
    table: str
    cols: list[str]
    unique: bool
    where: str | None = None  # one of WHERES over the first column
    collate: str | None = None  # COLLATE of the first key


@dataclass
class Schema:
    tables: list[Tbl]
    indexes: list[Idx] = field(default_factory=list)
    views: list[tuple[str, str, list[str]]] = field(default_factory=list)
    triggers: list[tuple[str, str]] = field(default_factory=list)

    def table(self, name: str) -> Tbl:
        return next(t for t in self.tables if t.name == name)


@dataclass(frozen=True)
class Style:
    """How the DDL is spelled: none of it may count as a difference."""

    quote: str = ""  # "", '"', "`", "["
    upper: bool = True
    spaced: bool = False
    comments: bool = False
    null_default: bool = False  # DEFAULT NULL where there is no default
    asc: bool = False  # an explicit ASC on every index key
    operators: bool = False  # <> for !=, == for =
    name_case: bool = False  # every name upper-case (SQLite compares names case-insensitively)
    binary: bool = False  # an explicit COLLATE BINARY where there is no COLLATE


@st.composite
def schemas(draw: st.DrawFn) -> Schema:
    n = draw(st.integers(1, 4))
    tables = []
    for i in range(n):
        cols = []
        for k in range(draw(st.integers(1, 4))):
            ref = f"t{draw(st.integers(0, i - 1))}" if i and draw(st.booleans()) else None
            cols.append(
                Col(
                    f"c{k}",
                    "INTEGER" if ref else draw(st.sampled_from(TYPES)),
                    draw(st.booleans()),
                    draw(st.sampled_from([None, "0", "'x'"])) if not ref else None,
                    ref,
                    draw(st.sampled_from([None, None, *COLLATIONS])),
                    draw(st.sampled_from([None, None, *CHECKS])),
                )
            )
        table = Tbl(f"t{i}", cols, draw(st.booleans()))
        if draw(st.booleans()):
            names = [c.name for c in cols if not c.ref]
            if names:
                picked = draw(st.lists(st.sampled_from(names), min_size=1, max_size=2, unique=True))
                table.unique = Unique(picked, draw(st.sampled_from([None, None, *COLLATIONS])))
        tables.append(table)
    schema = Schema(tables)
    for t in tables:
        if draw(st.booleans()):
            cols = draw(
                st.lists(
                    st.sampled_from([c.name for c in t.cols]), min_size=1, max_size=2, unique=True
                )
            )
            schema.indexes.append(
                Idx(
                    f"ix_{t.name}",
                    t.name,
                    cols,
                    draw(st.booleans()),
                    draw(st.sampled_from([None, *WHERES])),
                    draw(st.sampled_from([None, None, *COLLATIONS])),
                )
            )
        if draw(st.booleans()):
            schema.views.append((f"v_{t.name}", t.name, [t.cols[0].name]))
        if draw(st.booleans()):
            schema.triggers.append((f"tr_{t.name}", t.name))
    return schema


def ddl(schema: Schema, style: Style = Style()) -> str:
    def q(name: str) -> str:
        if style.name_case:
            name = name.upper()
        if style.quote == "[":
            return f"[{name}]"
        return f"{style.quote}{name}{style.quote}"

    def kw(text: str) -> str:
        return text.upper() if style.upper else text.lower()

    def expr(template: str, column: str) -> str:
        text = template.format(c=q(column))
        if style.operators:
            text = text.replace("!=", "<>")
        return text

    def collate(name: str | None, inherited: str | None = "BINARY") -> str:
        """COLLATE name; with style.binary, where there is none, the one that applies anyway
        (BINARY for a column, the column's own for a key of an index or UNIQUE)."""
        name = name or (inherited if style.binary else None)
        return f" {kw('collate')} {kw(name)}" if name else ""

    def inherited(table: str, column: str) -> str:
        if column == "id":
            return "BINARY"
        return schema.table(table).col(column).collate or "BINARY"

    sp = "  \n   " if style.spaced else " "
    note = "/* generated */ " if style.comments else ""
    out = []
    for t in schema.tables:
        auto = f" {kw('autoincrement')}" if t.autoincrement else ""
        parts = [f"{q('id')} {kw('integer primary key')}{auto}"]
        for c in t.cols:
            part = f"{q(c.name)} {kw(c.type)}"
            if c.not_null:
                part += f" {kw('not null')}"
            if c.default is not None:
                part += f" {kw('default')} {c.default}"
            elif style.null_default:
                part += f" {kw('default null')}"
            part += collate(c.collate)
            if c.check is not None:
                part += f" {kw('check')} ({expr(c.check, c.name)})"
            if c.ref:
                part += f" {kw('references')} {q(c.ref)}({q('id')})"
            parts.append(part)
        if t.unique is not None:
            first, *rest = t.unique.cols
            keys = [q(first) + collate(t.unique.collate, t.col(first).collate or "BINARY")]
            parts.append(f"{kw('unique')} ({', '.join(keys + [q(c) for c in rest])})")
        out.append(f"{note}{kw('create table')} {q(t.name)}{sp}({sp}{(',' + sp).join(parts)}{sp});")
    for ix in schema.indexes:
        word = kw("create unique index" if ix.unique else "create index")
        order = f" {kw('asc')}" if style.asc else ""
        keys = [
            q(c) + collate(ix.collate if i == 0 else None, inherited(ix.table, c)) + order
            for i, c in enumerate(ix.cols)
        ]
        where = f" {kw('where')} {expr(ix.where, ix.cols[0])}" if ix.where else ""
        out.append(f"{word} {q(ix.name)} {kw('on')} {q(ix.table)}({', '.join(keys)}){where};")
    for name, table, cols in schema.views:
        select = f"{kw('select')}{sp}{', '.join(q(c) for c in cols)}{sp}{kw('from')} {q(table)}"
        out.append(f"{kw('create view')} {q(name)} {kw('as')} {select}; -- view\n")
    for name, table in schema.triggers:
        out.append(
            f"{kw('create trigger')} {q(name)} {kw('after insert on')} {q(table)} "
            f"{kw('begin')}{sp}{kw('select')} 1;{sp}{kw('end')};"
        )
    return "\n".join(out)


def snapshot(sql: str) -> Manifest:
    conn = sqlite3.connect(":memory:")
    conn.executescript(sql)
    try:
        return read_schema(conn)
    finally:
        conn.close()


FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(schemas())
def test_snapshot_round_trips_through_yaml_without_differences(schema: Schema) -> None:
    import yaml

    manifest = snapshot(ddl(schema))
    reloaded = from_data(yaml.safe_load(dump_manifest(manifest)))
    assert diff(reloaded, manifest) == []
    assert dump_manifest(reloaded) == dump_manifest(manifest)  # stable output


@FAST
@given(
    schemas(),
    st.builds(
        Style,
        st.sampled_from(["", '"', "`", "["]),
        st.booleans(),
        st.booleans(),
        st.booleans(),
        st.booleans(),
        st.booleans(),
        st.booleans(),
        st.booleans(),
        st.booleans(),
    ),
)
def test_cosmetic_rewrites_are_not_differences(schema: Schema, style: Style) -> None:
    assert diff(snapshot(ddl(schema)), snapshot(ddl(schema, style))) == []


def referenced(schema: Schema) -> set[tuple[str, str]]:
    """(table, column) pairs something else depends on (or that carry a CHECK)."""
    used = {(ix.table, c) for ix in schema.indexes for c in ix.cols}
    used |= {(t, c) for _, t, cols in schema.views for c in cols}
    used |= {(t.name, c) for t in schema.tables if t.unique for c in t.unique.cols}
    used |= {(t.name, c.name) for t in schema.tables for c in t.cols if c.check}
    return used


def other_collation(*current: str | None) -> str:
    """A collation that differs from each of current (None counts as BINARY)."""
    return next(c for c in COLLATIONS if c not in {x or "BINARY" for x in current})


def bump(text: str) -> str:
    """The same CHECK or condition with another constant."""
    for old, new in (("'x'", "'y'"), ("< 10", "< 20"), ("IS NOT NULL", "IS NULL")):
        if old in text:
            return text.replace(old, new)
    raise AssertionError(text)


def mutate(schema: Schema, which: int, pick: int) -> tuple[str, str, str] | None:
    """Apply one mutation; return the (kind, object, name) the diff must report, or None."""
    tables = schema.tables
    t = tables[pick % len(tables)]
    plain = [c for c in t.cols if (t.name, c.name) not in referenced(schema) and not c.ref]
    if which == 0:  # drop a table nothing depends on
        if any(c.ref == t.name for x in tables for c in x.cols) or any(
            v[1] == t.name for v in schema.views
        ):
            return None
        tables.remove(t)
        schema.indexes = [i for i in schema.indexes if i.table != t.name]
        schema.triggers = [x for x in schema.triggers if x[1] != t.name]
        return ("missing", "table", t.name)
    if which == 1:
        tables.append(Tbl("t_new", [Col("c0", "TEXT")]))
        return ("unexpected", "table", "t_new")
    if which == 2:
        if not plain or len(t.cols) < 2:
            return None
        t.cols.remove(plain[0])
        return ("missing", "column", f"{t.name}.{plain[0].name}")
    if which == 3:
        t.cols.append(Col("c_new", "TEXT"))
        return ("unexpected", "column", f"{t.name}.c_new")
    if which == 4:
        mine = [i for i in schema.indexes if i.table == t.name]
        if not mine:
            return None
        schema.indexes.remove(mine[0])
        return ("missing", "index", mine[0].name)
    if which == 5:
        schema.indexes.append(Idx("ix_new", t.name, [t.cols[0].name], False))
        return ("unexpected", "index", "ix_new")
    if which == 6:
        mine = [v for v in schema.views if v[1] == t.name]
        if not mine:
            return None
        schema.views.remove(mine[0])
        return ("missing", "view", mine[0][0])
    if which == 7:
        schema.views.append(("v_new", t.name, ["id"]))
        return ("unexpected", "view", "v_new")
    if which == 8:
        mine = [v for v in schema.views if v[1] == t.name]
        if not mine:
            return None
        i = schema.views.index(mine[0])
        schema.views[i] = (mine[0][0], t.name, ["id", *mine[0][2]])
        return ("changed", "view", mine[0][0])
    if which == 9:
        mine = [x for x in schema.triggers if x[1] == t.name]
        if not mine:
            return None
        schema.triggers.remove(mine[0])
        return ("missing", "trigger", mine[0][0])
    if which == 10:
        schema.triggers.append(("tr_new", t.name))
        return ("unexpected", "trigger", "tr_new")
    if which == 11:
        fk = [c for c in t.cols if c.ref]
        if not fk:
            return None
        parent, fk[0].ref = fk[0].ref, None
        return ("missing", "foreign_key", f"{t.name}({fk[0].name}) -> {parent}(id)")
    if which == 12:
        others = [x.name for x in tables if x.name != t.name]
        fit = [c for c in plain if c.type == "INTEGER" and c.default is None]
        if not fit or not others:
            return None
        fit[0].ref = others[0]  # only the REFERENCES clause changes
        return ("unexpected", "foreign_key", f"{t.name}({fit[0].name}) -> {others[0]}(id)")
    if which == 13:
        if not plain:
            return None
        col = plain[0]
        col.type = "TEXT" if col.type != "TEXT" else "INTEGER"
        return ("changed", "column", f"{t.name}.{col.name}")
    if which == 14:
        col = t.cols[0]
        col.not_null = not col.not_null
        return ("changed", "column", f"{t.name}.{col.name}")
    if which == 15:
        # A column's own collation. Not one that a UNIQUE or index names with a COLLATE of
        # its own: those are recorded relative to the column's, and would change with it.
        explicit = {(ix.table, ix.cols[0]) for ix in schema.indexes if ix.collate}
        explicit |= {(x.name, x.unique.cols[0]) for x in tables if x.unique and x.unique.collate}
        fit = [c for c in t.cols if (t.name, c.name) not in explicit]
        if not fit:
            return None
        fit[0].collate = other_collation(fit[0].collate)
        return ("changed", "column", f"{t.name}.{fit[0].name}")
    if which == 16:
        t.autoincrement = not t.autoincrement
        return ("changed", "table", t.name)
    if which == 17:
        if t.unique is None:
            return None
        first = t.col(t.unique.cols[0])
        t.unique.collate = other_collation(t.unique.collate or first.collate)
        return ("changed", "index", f"{t.name}: UNIQUE({', '.join(t.unique.cols)})")
    if which == 18:
        mine = [i for i in schema.indexes if i.table == t.name]
        if not mine:
            return None
        ix = mine[0]
        ix.collate = other_collation(ix.collate or t.col(ix.cols[0]).collate)
        return ("changed", "index", ix.name)
    if which == 19:
        checked = [c for c in t.cols if c.check]
        if not checked:
            return None
        checked[0].check = bump(checked[0].check)  # type: ignore[arg-type]
        return ("changed", "check", f"{t.name}: CHECK on {checked[0].name}")
    if which == 20:
        mine = [i for i in schema.indexes if i.table == t.name and i.where]
        if not mine:
            return None
        mine[0].where = bump(mine[0].where)  # type: ignore[arg-type]
        return ("changed", "index", mine[0].name)
    raise AssertionError(which)


MUTATIONS = {
    0: "drop table",
    1: "add table",
    2: "drop column",
    3: "add column",
    4: "drop index",
    5: "add index",
    6: "drop view",
    7: "add view",
    8: "change view sql",
    9: "drop trigger",
    10: "add trigger",
    11: "drop foreign key",
    12: "add foreign key",
    13: "change column type",
    14: "change nullability",
    15: "change column collation",
    16: "toggle autoincrement",
    17: "change unique collation",
    18: "change index key collation",
    19: "change check",
    20: "change partial index condition",
}


@pytest.mark.parametrize("which", list(MUTATIONS), ids=list(MUTATIONS.values()))
@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
@given(schema=schemas(), pick=st.integers(0, 10))
def test_every_single_mutation_is_reported_once(schema: Schema, pick: int, which: int) -> None:
    # assume() discards schemas a mutation does not apply to; a mutation that never applies
    # makes hypothesis fail the test as Unsatisfiable, so none is skipped silently.
    mutated = copy.deepcopy(schema)
    expected = mutate(mutated, which, pick)
    assume(expected is not None)
    found = diff(snapshot(ddl(schema)), snapshot(ddl(mutated)))
    assert [(d.kind, d.object, d.name) for d in found] == [expected]

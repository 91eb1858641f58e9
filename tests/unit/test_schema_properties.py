"""Property tests of snapshot and diff over generated schemas (hypothesis)."""

from __future__ import annotations

import copy
import sqlite3
from dataclasses import dataclass, field

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from persistaudit.diff import diff
from persistaudit.manifest import Manifest, dump_manifest
from persistaudit.schema import read_schema

TYPES = ["INTEGER", "TEXT", "REAL", "BLOB"]


@dataclass
class Col:
    name: str
    type: str
    not_null: bool = False
    default: str | None = None
    ref: str | None = None  # parent table (its id)


@dataclass
class Tbl:
    name: str
    cols: list[Col]


@dataclass
class Schema:
    tables: list[Tbl]
    indexes: list[tuple[str, str, list[str], bool]] = field(default_factory=list)
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
                )
            )
        tables.append(Tbl(f"t{i}", cols))
    schema = Schema(tables)
    for t in tables:
        if draw(st.booleans()):
            cols = draw(
                st.lists(
                    st.sampled_from([c.name for c in t.cols]), min_size=1, max_size=2, unique=True
                )
            )
            schema.indexes.append((f"ix_{t.name}", t.name, cols, draw(st.booleans())))
        if draw(st.booleans()):
            schema.views.append((f"v_{t.name}", t.name, [t.cols[0].name]))
        if draw(st.booleans()):
            schema.triggers.append((f"tr_{t.name}", t.name))
    return schema


def ddl(schema: Schema, style: Style = Style()) -> str:
    def q(name: str) -> str:
        if style.quote == "[":
            return f"[{name}]"
        return f"{style.quote}{name}{style.quote}"

    def kw(text: str) -> str:
        return text.upper() if style.upper else text.lower()

    sp = "  \n   " if style.spaced else " "
    note = "/* generated */ " if style.comments else ""
    out = []
    for t in schema.tables:
        parts = [f"{q('id')} {kw('integer primary key')}"]
        for c in t.cols:
            part = f"{q(c.name)} {kw(c.type)}"
            if c.not_null:
                part += f" {kw('not null')}"
            if c.default is not None:
                part += f" {kw('default')} {c.default}"
            if c.ref:
                part += f" {kw('references')} {q(c.ref)}({q('id')})"
            parts.append(part)
        out.append(f"{note}{kw('create table')} {q(t.name)}{sp}({sp}{(',' + sp).join(parts)}{sp});")
    for name, table, cols, unique in schema.indexes:
        word = kw("create unique index" if unique else "create index")
        out.append(f"{word} {q(name)} {kw('on')} {q(table)}({', '.join(q(c) for c in cols)});")
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
    reloaded = Manifest.model_validate(yaml.safe_load(dump_manifest(manifest)))
    assert diff(reloaded, manifest) == []
    assert dump_manifest(reloaded) == dump_manifest(manifest)  # stable output


@FAST
@given(
    schemas(),
    st.builds(
        Style, st.sampled_from(["", '"', "`", "["]), st.booleans(), st.booleans(), st.booleans()
    ),
)
def test_cosmetic_rewrites_are_not_differences(schema: Schema, style: Style) -> None:
    assert diff(snapshot(ddl(schema)), snapshot(ddl(schema, style))) == []


def referenced(schema: Schema) -> set[tuple[str, str]]:
    """(table, column) pairs something else depends on."""
    used = {(t, c) for _, t, cols, _ in schema.indexes for c in cols}
    used |= {(t, c) for _, t, cols in schema.views for c in cols}
    return used


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
        schema.indexes = [i for i in schema.indexes if i[1] != t.name]
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
        mine = [i for i in schema.indexes if i[1] == t.name]
        if not mine:
            return None
        schema.indexes.remove(mine[0])
        return ("missing", "index", mine[0][0])
    if which == 5:
        schema.indexes.append(("ix_new", t.name, [t.cols[0].name], False))
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

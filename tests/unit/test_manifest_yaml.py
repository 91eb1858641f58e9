"""manifest_yaml's reader and writer give exactly what PyYAML gives, or step aside.

parse(text) is either None (PyYAML then reads the file) or the data yaml's safe loader
builds; emit(data) is byte for byte what the dumper writes for the same data.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from persistaudit.manifest import (
    _SECTIONS,
    Manifest,
    _dump,
    dump_manifest,
    from_data,
    load_manifest,
    plain,
)
from persistaudit.manifest_yaml import flowed, parse
from persistaudit.yamlio import _Loader
from tests.helpers import REPO

PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Scalars that trip a YAML writer or reader: quoting, resolution to other types, indicators,
# width, line breaks, non-ASCII.
TRICKY = [
    "id",
    "c1",
    "1",
    "007",
    "0x1F",
    "1_000",
    "1.5",
    "1e3",
    ".inf",
    "true",
    "Yes",
    "off",
    "null",
    "~",
    "",
    " lead",
    "trail ",
    "a b",
    "a  b",
    "x: y",
    "a #b",
    "#c",
    "-x",
    "- x",
    "? q",
    "it's",
    "'q'",
    '"d"',
    "a,b",
    "[x]",
    "{y}",
    "&a",
    "*b",
    "!t",
    "|",
    ">",
    "%p",
    "@q",
    "`r",
    "<<",
    "=",
    "2001-12-14",
    "12:30",
    "CURRENT_TIMESTAMP",
    "(datetime('now'))",
    "strftime('%Y-%m-%dT%H:%M:%S', 'now')",
    "VARCHAR(255)",
    "DOUBLE PRECISION",
    "length(title) > 0 AND title NOT LIKE '%x%'",
    "café",
    "tab\there",
    "line\nbreak",
    "x" * 99,
    "y" * 140,
    " ".join(["word"] * 30),
    "\x7f",
]
names = st.sampled_from(TRICKY) | st.text(min_size=1, max_size=12)
sql = st.sampled_from(TRICKY) | st.text(max_size=150)


def columns(draw: st.DrawFn) -> list[dict[str, Any]]:
    out = []
    for name in draw(st.lists(names, max_size=4, unique_by=str.lower)):
        column: dict[str, Any] = {"name": name}
        if draw(st.booleans()):
            column["type"] = draw(names)
        if draw(st.booleans()):
            column["not_null"] = True
        if draw(st.booleans()):
            column["default"] = draw(sql)
        if draw(st.booleans()):
            column["pk"] = draw(st.integers(1, 3))
        if draw(st.booleans()):
            column["collation"] = draw(st.sampled_from(["NOCASE", "RTRIM"]))
        out.append(column)
    return out


@st.composite
def manifests(draw: st.DrawFn) -> Manifest:
    tables = {}
    for name in draw(st.lists(names, max_size=4, unique_by=str.lower)):
        table: dict[str, Any] = {"columns": columns(draw)}
        if draw(st.booleans()):
            table["checks"] = draw(st.lists(sql, max_size=2))
        if draw(st.booleans()):
            table["primary_key"] = draw(st.lists(names, max_size=2))
        if draw(st.booleans()):
            table["foreign_keys"] = [
                {"columns": [draw(names)], "table": draw(names), "to": [draw(names)]}
            ]
        if draw(st.booleans()):
            table["without_rowid"] = True
        tables[name] = table
    indexes = {
        name: {"table": draw(names), "columns": draw(st.lists(names, min_size=1, max_size=3))}
        | ({"where": draw(sql)} if draw(st.booleans()) else {})
        for name in draw(st.lists(names, max_size=3, unique_by=str.lower))
    }
    views = {n: {"sql": draw(sql)} for n in draw(st.lists(names, max_size=2, unique_by=str.lower))}
    data: dict[str, Any] = {"manifest_version": 1, "tables": tables, "indexes": indexes}
    data["views"] = views
    if draw(st.booleans()):
        data["name"] = draw(names)
        data["options"] = {"ignore": draw(st.lists(names, max_size=2))}
    return from_data(data)


def pyyaml_load(text: str) -> Any:
    return yaml.load(text, Loader=_Loader)


def pyyaml_dump(manifest: Manifest) -> str:
    """dump_manifest as it was: PyYAML writes the whole document."""
    data = plain(manifest)
    data["manifest_version"] = 1
    for key in _SECTIONS:
        if key in data:
            data[key] = {name: data[key][name] for name in sorted(data[key])}
    order = ["manifest_version", "name", "options", "user_version", "alembic_revision"]
    ordered = {k: data[k] for k in [*order, *_SECTIONS] if k in data}
    return _dump(flowed(ordered))


def generated(tables: int, columns: int) -> Manifest:
    data: dict[str, Any] = {"manifest_version": 1, "tables": {}, "indexes": {}}
    for t in range(tables):
        cols = [{"name": "id", "type": "INTEGER", "pk": 1}]
        cols += [{"name": f"c{c}", "type": "TEXT", "not_null": c % 2 == 0} for c in range(columns)]
        data["tables"][f"t{t}"] = {"columns": cols, "primary_key": ["id"]}
        data["indexes"][f"ix_t{t}"] = {"table": f"t{t}", "columns": ["c1"], "unique": t % 2 == 0}
    return from_data(data)


EXPECTED = sorted((REPO / "expected").glob("*.yaml"))


@pytest.mark.parametrize("path", EXPECTED, ids=lambda p: p.name)
def test_the_bundled_manifests_read_and_write_as_with_pyyaml(path: Path) -> None:
    text = path.read_text()
    fast = parse(text)
    assert fast is None or fast == pyyaml_load(text)
    manifest = load_manifest(path)
    assert dump_manifest(manifest).removeprefix(_header()) == pyyaml_dump(manifest)


def _header() -> str:
    return dump_manifest(generated(0, 0)).split("\n", 1)[0] + "\n"


@PROPERTY
@given(manifests())
def test_writing_gives_pyyamls_bytes_and_reading_its_data(manifest: Manifest) -> None:
    text = dump_manifest(manifest)
    assert text.removeprefix(_header()) == pyyaml_dump(manifest)
    fast = parse(text)
    assert fast is None or fast == pyyaml_load(text)


def test_the_dumpers_own_output_takes_the_fast_path() -> None:
    """Else large manifests would quietly be slow again."""
    text = dump_manifest(generated(50, 8))
    assert parse(text) == pyyaml_load(text)
    quirky = text.replace("c1", "'1'").replace("INTEGER", "VARCHAR(255)")
    assert parse(quirky) == pyyaml_load(quirky)


# Lines in and just outside the subset: what PyYAML does with them decides.
FRAGMENTS = [
    "a: 1",
    "a: b c",
    "a: 'x'",
    "a: 'it''s'",
    "a: [x, y]",
    "a: {k: v, n: 1}",
    "a: {k: [v], m: {x: y}}",
    "a:",
    "  b: 1",
    "  b: x",
    "    c: 2",
    "- x",
    "- {name: id, pk: 1}",
    "  - x",
    "a: x # note",
    "# note",
    "",
    "a: &anchor x",
    "b: *anchor",
    "a: !!str 1",
    "a: x:y",
    "a: 'open",
    "  more",
    "a: [x, ]",
    "a: {k: v,}",
    "a: {k}",
    "a: [k: v]",
    "? a",
    "'q': v",
    "true: 1",
    "1: x",
    "a: 0x_",
    "a: 2001-12-14",
    "a: <<",
    "---",
    "a: -x",
    "a: - x",
    "a: x  y",
    "a:  x",
    "a: (f('x'))",
    "a: x, y",
    "a: {k: a b, l: 'c, d'}",
    "a: [x,y]",
    "a: {k:v}",
    "\ta: 1",
    "a: 1 ",
    "a: {" + "k" * 1030 + ": v}",
    "k" * 1030 + ": v",
]


@PROPERTY
@given(st.lists(st.sampled_from(FRAGMENTS), min_size=1, max_size=8))
def test_any_text_reads_as_pyyaml_reads_it_or_not_at_all(lines: list[str]) -> None:
    text = "\n".join(lines) + "\n"
    fast = parse(text)
    if fast is None:
        return
    expected = pyyaml_load(text)  # parse must not accept what PyYAML refuses
    assert fast == expected
    assert [type(k) for k in fast] == [type(k) for k in expected]


def test_a_manifest_outside_the_subset_reads_as_before(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    path.write_text("manifest_version: 1\ntables:\n  t: &t {columns: [{name: id}]}\n  u: *t\n")
    manifest = load_manifest(path)
    assert manifest.tables["u"] == manifest.tables["t"]
    path.write_text("manifest_version: 1\ntables:\n  t:\n    columns: [{name: 7, x: 1}]\n")
    with pytest.raises(Exception, match=r"m.yaml:4: tables.t.columns.0.name: "):
        load_manifest(path)

"""The report's table of schema differences: what the manifest expected, what was found.

Every row fills both cells. A missing object shows its definition as expected and
"missing" as found; an unexpected one the reverse. A changed object shows each side; SQL
too long to compare by eye is shown as a word diff split in two, what the expected side
lost marked [-...-] and what the found side gained marked {+...+}.
"""

from __future__ import annotations

from typing import Any

from persistaudit import sqltext
from persistaudit.diff import SQL_FIELDS, SQL_OBJECTS, Difference, show_value
from persistaudit.display import printable
from persistaudit.manifest import Column, Index, Manifest, Table
from persistaudit.sqltext import DEFAULT_COLLATION, fold

COLUMNS = ["Difference", "Name", "Expected", "Actual"]
LONG_SQL = 60  # characters of SQL above which a change is shown as a word diff
MAX_DEFINITION = 240  # characters of a definition shown in a cell
MISSING = "missing"
ABSENT = "absent (not in the manifest)"
PRESENT = "present"
WORD_DIFF_LEGEND = "long SQL as a word diff: [-only expected-] and {+only found+}"


def rows(
    differences: list[Difference],
    expected: Manifest | None = None,
    actual: Manifest | None = None,
) -> list[list[str]]:
    """One row per difference, [kind, name, expected, actual], each escaped for one line.

    The manifests give a missing or unexpected object's definition; without them it is
    shown as "present".
    """
    out = []
    for d in differences:
        if d.kind == "missing":
            sides = definition(d, expected), MISSING
        elif d.kind == "unexpected":
            sides = ABSENT, definition(d, actual)
        else:
            sides = changed_sides(d)
        out.append([d.kind, printable(d.name), printable(sides[0]), printable(sides[1])])
    return out


def word_diffed(table: list[list[str]]) -> bool:
    """Whether a row of the table shows a word diff (so its title explains the marks)."""
    return any("[-" in row[2] or "{+" in row[3] for row in table if row[0] == "changed")


def changed_sides(d: Difference) -> tuple[str, str]:
    """(expected, actual) of a changed object: each changed field, or its SQL."""
    if isinstance(d.expected, dict) and isinstance(d.actual, dict):
        pairs = [(k, *_field_sides(k, d.expected[k], d.actual.get(k))) for k in d.expected]
        return "; ".join(f"{k}: {a}" for k, a, _ in pairs), "; ".join(
            f"{k}: {b}" for k, _, b in pairs
        )
    if d.object in SQL_OBJECTS and isinstance(d.expected, str):
        return sql_sides(d.expected, str(d.actual))
    return show_value(d.expected), show_value(d.actual)


def _field_sides(field: str, old: Any, new: Any) -> tuple[str, str]:
    if field in SQL_FIELDS and old is not None and new is not None:
        if isinstance(old, list):
            return sql_sides(", ".join(old), ", ".join(new))
        return sql_sides(str(old), str(new))
    return show_value(old), show_value(new)


def sql_sides(old: str, new: str) -> tuple[str, str]:
    """Short SQL as it is; long SQL as the two sides of a word diff."""
    if len(old) <= LONG_SQL and len(new) <= LONG_SQL:
        return old, new
    return sqltext.word_diff_sides(old, new)


def definition(d: Difference, manifest: Manifest | None) -> str:
    """What the object is in manifest (a table's columns, an index's key, a view's SQL)."""
    found = _definition(d, manifest) if manifest is not None else ""
    if len(found) > MAX_DEFINITION:
        found = found[: MAX_DEFINITION - 4].rstrip() + " ..."
    return found or PRESENT


def _definition(d: Difference, manifest: Manifest) -> str:
    if d.object == "table":
        table = _lookup(manifest.tables, d.name)
        return table_definition(table) if table else ""
    if d.object == "column":
        table = _lookup(manifest.tables, d.table)
        name = fold(d.name[len(d.table) + 1 :])
        column = next((c for c in table.columns if fold(c.name) == name), None) if table else None
        return column_definition(column, with_name=False) if column else ""
    if d.object == "index":
        index = _lookup(manifest.indexes, d.name)
        return index_definition(index) if index else ""  # a UNIQUE constraint names itself
    if d.object == "view":
        view = _lookup(manifest.views, d.name)
        return sqltext.normalize(view.sql) or "" if view else ""
    if d.object == "trigger":
        trigger = _lookup(manifest.triggers, d.name)
        return sqltext.normalize(trigger.sql) or "" if trigger else ""
    return ""  # a CHECK or a foreign key: its name is its definition


def _lookup(objects: dict[str, Any], name: str) -> Any:
    key = fold(name)
    return next((obj for n, obj in objects.items() if fold(n) == key), None)


def column_definition(column: Column, with_name: bool = True) -> str:
    parts = [column.name] if with_name else []
    parts.append(column.type or "(no type)")
    if column.pk:
        parts.append("PRIMARY KEY")
    if column.not_null:
        parts.append("NOT NULL")
    if column.default is not None:
        parts.append(f"DEFAULT {column.default}")
    if column.collation != DEFAULT_COLLATION:
        parts.append(f"COLLATE {column.collation}")
    if column.generated:
        parts.append(f"GENERATED ({column.generated})")
    return " ".join(parts)


def table_definition(table: Table) -> str:
    columns = ", ".join(column_definition(c) for c in table.columns)
    return f"table ({columns})" if columns else "table"


def index_definition(index: Index) -> str:
    kind = "UNIQUE INDEX" if index.unique else "INDEX"
    where = f" WHERE {index.where}" if index.where else ""
    return f"{kind} ON {index.table}({', '.join(index.columns)}){where}"

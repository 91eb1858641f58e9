"""Shared by the fresh install and upgrade suites: a live schema judged against its manifest."""

from __future__ import annotations

import pytest

from persistaudit.diff import diff, diff_tables
from persistaudit.difftable import COLUMNS, WORD_DIFF_LEGEND, rows, word_diffed
from persistaudit.display import printable
from persistaudit.manifest import Manifest, dump_manifest
from persistaudit.plugin import CheckRecorder

OBJECT_ORDER = ["table", "column", "index", "check", "foreign_key", "view", "trigger", "pragma"]


def plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "es" if word.endswith("x") else "s")


def describe_schema(schema: Manifest) -> str:
    """A schema in one line: how many tables, indexes, views and triggers."""
    return (
        f"{plural(len(schema.tables), 'table')}, {plural(len(schema.indexes), 'index')}, "
        f"{plural(len(schema.views), 'view')}, {plural(len(schema.triggers), 'trigger')}"
    )


def match_manifest(
    check: CheckRecorder,
    expected: Manifest,
    actual: Manifest,
    attachment: str,
    title: str,
    metric_suffix: str = "",
) -> None:
    """Record the live schema (attached as YAML), its tables and its differences from the
    manifest; fail with what is missing and what differs, or pass with what matched.

    metric_suffix tells this check's metrics apart from the fresh install's.
    """
    __tracebackhide__ = True
    tables = diff_tables(expected, actual)
    differences = diff(expected, actual)
    check.attach(attachment, dump_manifest(actual), title, describe_schema(actual))
    check.add(
        "Tables (SELECT name FROM sqlite_master WHERE type='table')",
        f"expected {len(tables.expected)}, present {len(tables.present)}, "
        f"missing {len(tables.missing)}, unexpected {len(tables.unexpected)}\n"
        f"present: {printable(', '.join(sorted(actual.tables)))}",
        "command",
    )
    check.metric(
        "Tables expected / present / missing" + metric_suffix,
        f"{len(tables.expected)} / {len(tables.expected)} / 0",
        f"{len(tables.expected)} / {len(tables.present)} / {len(tables.missing)}",
        tables.ok,
    )
    check.metric("Schema differences" + metric_suffix, "0", str(len(differences)), not differences)
    for kind in OBJECT_ORDER:
        found = rows([d for d in differences if d.object == kind], expected, actual)
        if found:
            title = f"{kind.replace('_', ' ')} differences ({len(found)})"
            if word_diffed(found):
                title += f"; {WORD_DIFF_LEGEND}"
            check.table(title, COLUMNS, found)
    if not differences:
        check.summary = (
            f"schema matches the manifest: {plural(len(tables.expected), 'table')}, "
            f"{plural(len(expected.indexes), 'index')}, {plural(len(expected.views), 'view')}, "
            f"{plural(len(expected.triggers), 'trigger')}"
        )
        return
    problems = []
    if tables.missing:
        problems.append(
            f"{len(tables.missing)} of {len(tables.expected)} tables missing: "
            + printable(", ".join(tables.missing))
        )
    others = [d for d in differences if not (d.object == "table" and d.kind == "missing")]
    if others:
        shown = "; ".join(d.describe() for d in others[:5])
        more = f" (+{len(others) - 5} more)" if len(others) > 5 else ""
        word = "other difference(s)" if tables.missing else "difference(s)"
        problems.append(f"{len(others)} {word}: {shown}{more}")
    check.summary = "; ".join(problems)
    pytest.fail(check.summary, pytrace=False)

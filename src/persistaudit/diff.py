"""Compare what a fresh install created with what the manifest promises. Pure functions."""

from __future__ import annotations

from dataclasses import dataclass

from persistaudit.inspect import DatabaseFacts
from persistaudit.manifest import Manifest


@dataclass(frozen=True)
class TableDiff:
    expected: list[str]
    present: list[str]
    missing: list[str]
    unexpected: list[str]
    extra_allowed: bool

    @property
    def ok(self) -> bool:
        return not self.missing and (self.extra_allowed or not self.unexpected)


def diff_tables(manifest: Manifest, facts: DatabaseFacts) -> TableDiff:
    expected = sorted(n for n in manifest.tables if not manifest.ignored(n))
    actual = sorted(n for n in facts.tables if not manifest.ignored(n))
    return TableDiff(
        expected=expected,
        present=[n for n in expected if n in facts.tables],
        missing=[n for n in expected if n not in facts.tables],
        unexpected=[n for n in actual if n not in manifest.tables],
        extra_allowed=manifest.options.allow_extra_tables,
    )

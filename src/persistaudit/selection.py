"""Which of persistaudit's own checks a run left out, and how its verdict says so.

A run may select some checks (-k) or run a team's own checks alone (`pytest tests/audit`):
its verdict then covers only what ran. The results list every bundled check the config
switches on; those that did not run are `skipped` ("not selected for this run") and named
in results.json's `coverage`, so neither a PASS of a subset nor one of a custom check alone
reads as a full audit. A suite the config switches off is not counted: a full run skips it
too (the report lists it as not tested).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from persistaudit import catalog

NOT_SELECTED = "not selected for this run"


def missing_bundled(ran: Iterable[str], enabled: Callable[[str], bool]) -> list[str]:
    """The bundled checks (catalog ids) switched on but without any result in `ran`."""
    have = {catalog.base_id(i) for i in ran}
    return [c.id for c in catalog.bundled() if enabled(c.id) and c.id not in have]


def coverage(checks: list[dict[str, Any]], deselected: set[str]) -> dict[str, Any]:
    """results.json's `coverage`: whether every bundled check ran, which did not, and the
    ids of the team's own checks. A bundled check ran when any of its results (one per
    database) is not a deselection."""
    ran = {catalog.base_id(c["id"]) for c in checks if c["id"] not in deselected}
    listed = {catalog.base_id(c["id"]) for c in checks}
    not_run = [b.id for b in catalog.bundled() if b.id in listed and b.id not in ran]
    custom = [c["id"] for c in checks if not catalog.is_bundled(c["id"])]
    return {"complete": not not_run, "bundled_not_run": not_run, "custom_checks": custom}


def not_run(doc: dict[str, Any]) -> list[str]:
    """The bundled checks this results document's run left out ([] for older documents)."""
    found = doc.get("coverage") or {}
    return list(found.get("bundled_not_run") or [])


def compact(ids: list[str], doc: dict[str, Any]) -> str:
    """Ids grouped by suite: a suite none of whose checks ran is `suite (all N)`."""
    listed: dict[str, list[str]] = {}
    for check in doc.get("checks", []):
        base = catalog.base_id(check["id"])
        if catalog.is_bundled(base):
            members = listed.setdefault(check["suite"], [])
            if base not in members:
                members.append(base)
    missing = set(ids)
    parts: list[str] = []
    for suite, in_suite in listed.items():
        left = [m for m in in_suite if m in missing]
        if left and len(left) == len(in_suite) and len(in_suite) > 1:
            parts.append(f"{suite} (all {len(in_suite)})")
        else:
            parts.extend(left)
    return ", ".join(parts)


def verdict_text(doc: dict[str, Any]) -> str:
    """The verdict as printed and reported: `PASS`, or `PASS (partial: ...)` naming the
    bundled checks that did not run."""
    verdict = str(doc["verdict"])
    left = not_run(doc)
    if not left:
        return verdict
    total = len({catalog.base_id(c["id"]) for c in doc["checks"] if catalog.is_bundled(c["id"])})
    return (
        f"{verdict} (partial: {len(left)} of {total} bundled checks did not run: "
        f"{compact(left, doc)})"
    )

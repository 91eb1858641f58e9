"""Compare two audits (release N against N+1): what regressed and what improved."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

# Worse is higher, in the verdict's order (FAIL, ERROR, BLOCKED, PASS). A waived failure is
# still a failure for the comparison's purposes.
RANK = {"passed": 0, "skipped": 1, "waived": 2, "blocked": 3, "error": 4, "failed": 5}
VERDICT_RANK = {"PASS": 0, "BLOCKED": 1, "ERROR": 2, "FAIL": 3}


@dataclass(frozen=True)
class Change:
    kind: Literal["regressed", "improved", "added", "removed"]
    what: Literal["check", "metric", "verdict"]
    name: str
    old: str
    new: str

    def describe(self) -> str:
        return f"{self.kind:<9} {self.what:<7} {self.name}: {self.old} -> {self.new}"


def _by(items: list[dict[str, Any]], key: str) -> dict[str, dict[str, Any]]:
    return {item[key]: item for item in items}


def compare(old: dict[str, Any], new: dict[str, Any]) -> list[Change]:
    changes: list[Change] = []
    if old["verdict"] != new["verdict"]:
        worse = VERDICT_RANK[new["verdict"]] > VERDICT_RANK[old["verdict"]]
        changes.append(
            Change(
                "regressed" if worse else "improved",
                "verdict",
                "verdict",
                old["verdict"],
                new["verdict"],
            )
        )
    for what, key, items_old, items_new in (
        ("check", "id", old["checks"], new["checks"]),
        ("metric", "name", old["metrics"], new["metrics"]),
    ):
        a, b = _by(items_old, key), _by(items_new, key)
        for name in sorted(set(a) | set(b)):
            x, y = a.get(name), b.get(name)
            if x is None:
                assert y is not None
                changes.append(Change("added", what, name, "-", _show(what, y)))  # type: ignore[arg-type]
            elif y is None:
                changes.append(Change("removed", what, name, _show(what, x), "-"))  # type: ignore[arg-type]
            elif RANK[y["status"]] != RANK[x["status"]]:
                kind = "regressed" if RANK[y["status"]] > RANK[x["status"]] else "improved"
                changes.append(Change(kind, what, name, _show(what, x), _show(what, y)))  # type: ignore[arg-type]
    return changes


def _show(what: str, item: dict[str, Any]) -> str:
    if what == "metric":
        return f"{item['achieved']} ({item['status']})"
    return str(item["status"])

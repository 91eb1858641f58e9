"""Listing a run's resources copes with what the engine reports mid-removal."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from persistaudit.cleanup import list_resources


class _Api:
    """The three list calls of the engine API, answering as an engine does mid-removal."""

    def containers(self, **_kw: Any) -> list[dict[str, Any]]:
        return [
            {"Id": "b9b664aacb1c0000", "Names": None, "Labels": {"run": "x"}},
            {"Id": "c0ffee", "Names": ["/persistaudit-a-1"], "Labels": None},
        ]

    def volumes(self, **_kw: Any) -> dict[str, Any]:
        return {"Volumes": None}

    def networks(self, **_kw: Any) -> list[dict[str, Any]]:
        return []


def test_a_container_without_a_name_is_listed_by_its_short_id() -> None:
    client: Any = SimpleNamespace(api=_Api())
    names = [r.name for r in list_resources(client, label="run=x")]
    assert names == ["b9b664aacb1c", "persistaudit-a-1"]

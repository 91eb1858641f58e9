"""cleanup.list_resources on what the engine lists mid-change (no Docker: a stub API)."""

from __future__ import annotations

from typing import Any

from persistaudit.cleanup import list_resources


class Api:
    """The three listings of the engine's API, as a container being removed shows in them."""

    def containers(self, **_: Any) -> list[dict[str, Any]]:
        return [
            {"Id": "c1", "Names": ["/persistaudit-x-1"], "Labels": {"a": "b"}},
            {"Id": "c2" * 32, "Names": [], "Labels": None},  # being removed: no name left
            {"Id": "c3", "Labels": {}},
        ]

    def volumes(self, **_: Any) -> dict[str, Any]:
        return {"Volumes": [{"Name": "v1", "Labels": None}]}

    def networks(self, **_: Any) -> list[dict[str, Any]]:
        return [{"Name": "n1", "Id": "n1id"}]


class Client:
    api = Api()


def test_a_container_without_a_name_is_listed_by_its_id() -> None:
    found = list_resources(Client(), label="io.persistaudit.managed=true")  # type: ignore[arg-type]
    assert [(r.kind, r.name, r.id) for r in found] == [
        ("container", "persistaudit-x-1", "c1"),
        ("container", "c2" * 32, "c2" * 32),
        ("container", "c3", "c3"),
        ("volume", "v1", "v1"),
        ("network", "n1", "n1id"),
    ]

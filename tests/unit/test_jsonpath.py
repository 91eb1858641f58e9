"""JSON paths as captures and read-back checks name them."""

from __future__ import annotations

import pytest

from persistaudit.jsonpath import MISSING, as_text, lookup, parse

DOC = {"id": 7, "data": {"items": [{"id": "a"}, {"id": "b"}]}, "odd key": {"x.y": True}}


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("id", 7),
        ("data.items[1].id", "b"),
        ('["odd key"]["x.y"]', True),
        ("data.items", [{"id": "a"}, {"id": "b"}]),
    ],
)
def test_lookup(path: str, value: object) -> None:
    assert lookup(DOC, parse(path)) == value


@pytest.mark.parametrize("path", ["id.more", "data.items[2]", "nope", "data[0]"])
def test_missing(path: str) -> None:
    assert lookup(DOC, parse(path)) is MISSING


@pytest.mark.parametrize("path", ["", ".id", "a..b", "a[x]", "a b", 'a["unterminated]'])
def test_malformed_paths_are_refused(path: str) -> None:
    with pytest.raises(ValueError, match="JSON path"):
        parse(path)


def test_as_text() -> None:
    assert as_text("abc") == "abc"
    assert as_text(7) == "7"
    assert as_text({"a": [1, None]}) == '{"a":[1,null]}'

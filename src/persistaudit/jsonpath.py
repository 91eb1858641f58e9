"""A small JSON path: `token`, `data.items[0].id`, `meta["odd key"]`, what captures and
read-back checks name in a response body. Parsed when the config loads, so a malformed path
is a config error naming the field, not a failure in the middle of an audit.
"""

from __future__ import annotations

import json
import re
from typing import Any

_PART = re.compile(r'\.?([A-Za-z_$][\w$-]*)|\[(\d+)\]|\["((?:[^"\\]|\\.)*)"\]')
MISSING = object()


def parse(path: str) -> tuple[str | int, ...]:
    """The keys and indices of path; ValueError saying where it is malformed."""
    parts: list[str | int] = []
    pos = 0
    while pos < len(path):
        match = _PART.match(path, pos)
        if match is None or (pos == 0 and path.startswith(".")):
            raise ValueError(
                f"JSON path {path!r} is malformed at character {pos + 1}: use names joined by "
                'dots, [0] for list items and ["odd key"] for other keys'
            )
        name, index, quoted = match.groups()
        if name is not None:
            parts.append(name)
        elif index is not None:
            parts.append(int(index))
        else:
            parts.append(json.loads(f'"{quoted}"'))
        pos = match.end()
    if not parts:
        raise ValueError("JSON path is empty")
    return tuple(parts)


def lookup(document: Any, parts: tuple[str | int, ...]) -> Any:
    """The value at parts in document, or MISSING."""
    value = document
    for part in parts:
        in_list = isinstance(part, int) and isinstance(value, list) and part < len(value)
        in_object = isinstance(part, str) and isinstance(value, dict) and part in value
        if not (in_list or in_object):
            return MISSING
        value = value[part]
    return value


def as_text(value: Any) -> str:
    """A captured value as it is put into a later request: strings as they are, else JSON."""
    return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))

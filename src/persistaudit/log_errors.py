"""Error lines in a service's log, and which of them are new.

A start on an initialised volume that trips over its own initialisation usually says so in
its log and carries on. Which lines are errors is a guess, so the guess is kept narrow (an
error level word in capitals, a level field, a traceback, an exception line) and a line only
counts when the fresh install did not log the same line: an error every start logs is no
finding about a second start.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

_ERROR = re.compile(
    r"\b(?:ERROR|FATAL|CRITICAL|PANIC)\b"  # a level word, as loggers print it
    r"|\blevel\"?[=:]\s*\"?(?:error|fatal|critical|panic)\b"  # level=error, "level":"error"
    r"|Traceback \(most recent call last\)"
    r"|(?:^|\s)[A-Za-z_][\w.]*(?:Error|Exception): "  # sqlite3.OperationalError: ...
)
# Numbers, hex ids and timestamps differ between two starts' copies of the same line.
_VARYING = re.compile(r"0x[0-9a-fA-F]+|[0-9a-fA-F]{8,}|\d+")
MAX_LINE = 500  # characters of a line kept as evidence


def is_error(line: str) -> bool:
    return bool(_ERROR.search(line))


def shape(line: str) -> str:
    """The line with what varies between starts (numbers, ids, times) blanked out."""
    return _VARYING.sub("#", line.strip())


def new_errors(lines: Iterable[str], known: Iterable[str]) -> list[str]:
    """The error lines of lines whose shape is not among the error lines of known."""
    seen = {shape(line) for line in known if is_error(line)}
    out = []
    for line in lines:
        if is_error(line) and shape(line) not in seen:
            seen.add(shape(line))  # each new line once
            out.append(line[:MAX_LINE])
    return out

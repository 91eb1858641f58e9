"""SHA256SUMS: the digest of every file of a report folder, in the form `sha256sum -c` reads.

One line per file, `DIGEST  PATH`, the paths relative to the folder and sorted. A path with
a line break or a backslash would need GNU's escaped form, which other tools misread: such a
name is refused instead (persistaudit never writes one).
"""

from __future__ import annotations

import re

LINE = re.compile(r"([0-9a-f]{64}) [ *](.+)")


class SumsFormatError(ValueError):
    """Text that is not a SHA256SUMS file as persistaudit writes it; says which line."""


def unlistable(name: str) -> str:
    """Why a path cannot be a line of SHA256SUMS, or ""."""
    if any(c in name for c in "\n\r\\"):
        return "a file name with a line break or a backslash cannot be listed in SHA256SUMS"
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return "a file name that is not UTF-8 cannot be listed in SHA256SUMS"
    return ""


def render(digests: dict[str, str]) -> str:
    """The SHA256SUMS text for {path: sha256 hex}, sorted by path."""
    return "".join(f"{digests[name]}  {name}\n" for name in sorted(digests))


def parse(text: str) -> dict[str, str]:
    """{path: sha256 hex} of a SHA256SUMS text: every line well formed, no path twice."""
    if text and not text.endswith("\n"):
        raise SumsFormatError("its last line has no line break")
    out: dict[str, str] = {}
    for number, line in enumerate(text.split("\n")[:-1], 1):
        match = LINE.fullmatch(line)
        if match is None:
            raise SumsFormatError(f"line {number} is not 'SHA256  PATH'")
        digest, name = match.groups()
        if name in out:
            raise SumsFormatError(f"line {number} lists {name!r} a second time")
        out[name] = digest
    if not out:
        raise SumsFormatError("it lists no file")
    return out

"""Text from a database made safe to show on one line of a terminal or a report.

Names and SQL come from the audited database, which is untrusted: a table named
"x\\n  missing table forged" must not print a line of its own, and an escape sequence must
not recolour or erase what the auditor reads.
"""

from __future__ import annotations

_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t", "\\": "\\\\"}


def printable(text: object, *, backslash: bool = True) -> str:
    """Control, format and separator characters escaped as in Python (`\\n`, `\\x1b`,
    `\\u202e`), and the backslash doubled, so no two different texts look the same.

    backslash=False leaves backslashes to a caller that escapes them its own way (Markdown).
    """
    value = str(text)
    keep = "" if backslash else "\\"
    if value.isprintable() and ("\\" not in value or keep):
        return value
    return "".join(
        ch if (ch.isprintable() and ch != "\\") or ch == keep else _escape(ch) for ch in value
    )


def _escape(ch: str) -> str:
    if ch in _NAMED:
        return _NAMED[ch]
    code = ord(ch)
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def format_size(n: int) -> str:
    """A byte count as people read it: 4.0 GiB, 12.5 MiB, 300 bytes."""
    for unit, scale in (("TiB", 1024**4), ("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if abs(n) >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} bytes"

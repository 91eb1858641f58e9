"""SQL text as tokens: normalized so cosmetic differences vanish and real ones stay.

Whitespace, comments, identifier quoting styles ("x", `x`, [x]) and the case of keywords
and identifiers (both case-insensitive in SQLite) do not count; string literals do.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_TOKEN = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<comment>--[^\n]*|/\*.*?(?:\*/|\Z))
  | (?P<string>'(?:[^']|'')*')
  | (?P<ident>"(?:[^"]|"")*"|`(?:[^`]|``)*`|\[[^\]]*\])
  | (?P<blob>[xX]'[0-9a-fA-F]*')
  | (?P<number>(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)
  | (?P<word>[A-Za-z_\x80-\uffff][A-Za-z0-9_$\x80-\uffff]*)
  | (?P<param>[?:@$][A-Za-z0-9_]*)
  | (?P<op>\|\||<<|>>|<=|>=|==|!=|<>|->>|->|[-+*/%&|~<>=(),.;])
  | (?P<other>.)
    """,
    re.S | re.X,
)
_SIMPLE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# After these words an opening parenthesis is set off by a space: `in (...)`, `as (...)`.
_SPACED = {
    "and",
    "as",
    "check",
    "exists",
    "in",
    "not",
    "on",
    "or",
    "select",
    "then",
    "values",
    "when",
    "where",
    "else",
    "from",
    "join",
    "key",
    "unique",
    "references",
    "using",
    "by",
}


@dataclass(frozen=True)
class Token:
    kind: str  # word, string, ident (quoted, not simple), number, blob, param, op, other
    text: str  # normalized: words lower-case, simple quoted identifiers unquoted


def tokens(sql: str) -> list[Token]:
    out: list[Token] = []
    for match in _TOKEN.finditer(sql):
        kind = match.lastgroup or "other"
        text = match.group()
        if kind in ("ws", "comment"):
            continue
        if kind == "ident":
            name = text[1:-1].replace(text[0] * 2, text[0]) if text[0] != "[" else text[1:-1]
            if _SIMPLE.match(name):
                kind, text = "word", name.lower()
            else:
                text = '"' + name.replace('"', '""') + '"'
        elif kind == "word" or kind == "blob":
            text = text.lower()
        out.append(Token(kind, text))
    return out


def join(toks: list[Token]) -> str:
    """Tokens back to text with canonical spacing."""
    parts: list[str] = []
    prev: Token | None = None
    for tok in toks:
        if prev is not None:
            tight = (
                tok.text in (",", ")", ".", ";")
                or prev.text in ("(", ".")
                or (tok.text == "(" and prev.kind in ("word", "ident") and prev.text not in _SPACED)
            )
            if not tight:
                parts.append(" ")
        parts.append(tok.text)
        prev = tok
    return "".join(parts)


def normalize(sql: str | None) -> str | None:
    """Canonical text of a SQL fragment, or None for None."""
    if sql is None:
        return None
    return join(tokens(sql)).rstrip(";").rstrip()


def normalize_type(declared: str) -> str:
    """Declared column types: case and spacing do not count ("varchar ( 20 )" == "VARCHAR(20)")."""
    return join(tokens(declared)).upper()


def _close(toks: list[Token], start: int) -> int:
    """Index of the parenthesis closing the one at start."""
    depth = 0
    for i in range(start, len(toks)):
        if toks[i].text == "(":
            depth += 1
        elif toks[i].text == ")":
            depth -= 1
            if depth == 0:
                return i
    return len(toks)


def split_top_level(toks: list[Token]) -> list[list[Token]]:
    """Split on commas that are not inside parentheses."""
    parts: list[list[Token]] = [[]]
    depth = 0
    for tok in toks:
        if tok.text == "(":
            depth += 1
        elif tok.text == ")":
            depth -= 1
        if tok.text == "," and depth == 0:
            parts.append([])
        else:
            parts[-1].append(tok)
    return [p for p in parts if p]


def table_checks(create_table: str) -> list[str]:
    """The CHECK expressions of a CREATE TABLE, column- and table-level, normalized."""
    toks = tokens(create_table)
    try:
        open_at = next(i for i, t in enumerate(toks) if t.text == "(")
    except StopIteration:
        return []
    body = toks[open_at + 1 : _close(toks, open_at)]
    checks = []
    i = 0
    while i < len(body):
        if body[i].text == "check" and i + 1 < len(body) and body[i + 1].text == "(":
            end = _close(body, i + 1)
            checks.append(join(body[i + 2 : end]))
            i = end
        i += 1
    return checks


def table_options(create_table: str) -> set[str]:
    """Words after the column list: {'without rowid', 'strict'}."""
    toks = tokens(create_table)
    try:
        open_at = next(i for i, t in enumerate(toks) if t.text == "(")
    except StopIteration:
        return set()
    tail = [t.text for t in toks[_close(toks, open_at) + 1 :]]
    found = set()
    if "strict" in tail:
        found.add("strict")
    if "rowid" in tail and "without" in tail:
        found.add("without rowid")
    return found


def index_parts(create_index: str) -> tuple[list[str], str | None]:
    """The key columns or expressions of a CREATE INDEX, and its partial WHERE clause."""
    toks = tokens(create_index)
    try:
        on_at = next(i for i, t in enumerate(toks) if t.text == "on")
        open_at = next(i for i in range(on_at, len(toks)) if toks[i].text == "(")
    except StopIteration:
        return [], None
    end = _close(toks, open_at)
    columns = [join(part) for part in split_top_level(toks[open_at + 1 : end])]
    rest = toks[end + 1 :]
    where = join(rest[1:]) if rest and rest[0].text == "where" else None
    return columns, where


def view_body(create_view: str) -> str:
    """The SELECT of a CREATE VIEW, normalized (the view's own name is compared apart)."""
    toks = tokens(create_view)
    depth = 0
    for i, tok in enumerate(toks):
        if tok.text == "(":
            depth += 1
        elif tok.text == ")":
            depth -= 1
        elif tok.text == "as" and depth == 0:
            return join(toks[i + 1 :]).rstrip(";").rstrip()
    return join(toks)


def trigger_body(create_trigger: str) -> str:
    """A CREATE TRIGGER from its timing on (BEFORE/AFTER/INSTEAD OF ... END), normalized."""
    toks = tokens(create_trigger)
    for i, tok in enumerate(toks):
        if tok.text in ("before", "after", "instead", "insert", "update", "delete") and i > 2:
            return join(toks[i:]).rstrip(";").rstrip()
    return join(toks)

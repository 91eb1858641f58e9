"""SQL text as tokens: normalized so cosmetic differences vanish and real ones stay.

Whitespace, comments, identifier quoting styles ("x", `x`, [x]), the case of keywords
and identifiers (both case-insensitive in SQLite) and the spelling of operators SQLite
reads as one (`<>` and `!=`, `==` and `=`) do not count; string literals do.

Every function here runs in time linear in its input: the database is untrusted, and a
declared type of 200,000 `[` must not stall a snapshot.
"""

from __future__ import annotations

import difflib
import functools
import re
from collections.abc import Iterator
from dataclasses import dataclass, field

# Each alternative either matches or fails within a bounded look-ahead, except strings and
# quoted identifiers: when one of those is not closed, `open` takes the rest of the text, so
# no position is scanned to the end twice (scanning every `[` of `[[[[...` to the end for its
# `]` was quadratic).
_TOKEN = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<comment>--[^\n]*|/\*.*?(?:\*/|\Z))
  | (?P<string>'[^']*(?:''[^']*)*')
  | (?P<ident>"[^"]*(?:""[^"]*)*"|`[^`]*(?:``[^`]*)*`|\[[^\]]*\])
  | (?P<open>['"`\[].*)
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
_SAME_OPERATOR = {"<>": "!=", "==": "="}  # one token each in SQLite's own tokenizer
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def fold(name: str) -> str:
    """A name as SQLite compares names: ASCII letters case-insensitive, nothing else folded."""
    return name.lower() if name.isascii() else name.translate(_ASCII_LOWER)


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
# Words that start a table constraint rather than a column definition (none of them can
# be a column name unless quoted).
_TABLE_CONSTRAINT = {"constraint", "primary", "unique", "check", "foreign"}
DEFAULT_COLLATION = "BINARY"


@dataclass(frozen=True)
class Token:
    kind: str  # word, string, ident (quoted, not simple), number, blob, param, op, other
    text: str  # normalized: words lower-case, simple quoted identifiers unquoted
    # A quoted identifier is never a keyword, even when it reads as one ("collate").
    quoted: bool = field(default=False, compare=False)

    def keyword(self, *words: str) -> bool:
        """An unquoted word that is one of words."""
        return self.kind == "word" and not self.quoted and self.text in words


# SQL up to this long is tokenized once per process (see tokens); with at most _CACHED texts
# kept, the cache holds a few megabytes of tokens whatever the schema.
_CACHED_LENGTH = 4_000
_CACHED = 128


def tokens(sql: str) -> list[Token]:
    """The tokens of sql, without whitespace and comments.

    A snapshot reads each CREATE TABLE several times (columns, collations, checks) and the
    same declared types over and over: short texts come from a cache (5,000 tables: 6 s ->
    2 s). Tokens are immutable, the list is the caller's own."""
    if len(sql) <= _CACHED_LENGTH:
        return list(_cached_tokens(sql))
    return _tokens(sql)


@functools.lru_cache(maxsize=_CACHED)
def _cached_tokens(sql: str) -> tuple[Token, ...]:
    return tuple(_tokens(sql))


def _tokens(sql: str) -> list[Token]:
    out: list[Token] = []
    for match in _TOKEN.finditer(sql):
        kind = match.lastgroup or "other"
        text = match.group()
        if kind in ("ws", "comment"):
            continue
        quoted = False
        if kind == "ident":
            quoted = True
            name = text[1:-1].replace(text[0] * 2, text[0]) if text[0] != "[" else text[1:-1]
            if _SIMPLE.match(name):
                kind, text = "word", name.lower()
            else:
                text = '"' + name.replace('"', '""') + '"'
        elif kind == "open":
            kind = "other"  # an unclosed quote or bracket: kept as written, case and all
        elif kind == "word" or kind == "blob":
            text = text.lower()
        elif kind == "op":
            text = _SAME_OPERATOR.get(text, text)
        out.append(Token(kind, text, quoted))
    return out


def _gap(prev: Token, tok: Token) -> str:
    """The canonical space between two tokens: "" or " "."""
    tight = (
        tok.text in (",", ")", ".", ";")
        or prev.text in ("(", ".")
        or (tok.text == "(" and prev.kind in ("word", "ident") and prev.text not in _SPACED)
    )
    return "" if tight else " "


def join(toks: list[Token]) -> str:
    """Tokens back to text with canonical spacing."""
    parts: list[str] = []
    prev: Token | None = None
    for tok in toks:
        if prev is not None:
            parts.append(_gap(prev, tok))
        parts.append(tok.text)
        prev = tok
    return "".join(parts)


def _trim(toks: list[Token]) -> list[Token]:
    """Without trailing semicolons."""
    end = len(toks)
    while end and toks[end - 1].text == ";":
        end -= 1
    return toks[:end]


def normalize(sql: str | None) -> str | None:
    """Canonical text of a SQL fragment, or None for None."""
    if sql is None:
        return None
    return join(_trim(tokens(sql)))


def normalize_type(declared: str) -> str:
    """Declared column types: case and spacing do not count ("varchar ( 20 )" == "VARCHAR(20)")."""
    return join(tokens(declared)).upper()


def normalize_default(default: str | None) -> str | None:
    """A column default: outer parentheses do not count, and DEFAULT NULL is no default."""
    if default is None:
        return None
    toks = _trim(tokens(default))
    closing = _matches(toks)
    start, end = 0, len(toks) - 1
    while start < end and closing.get(start) == end:
        start, end = start + 1, end - 1
    toks = toks[start : end + 1]
    if not toks or (len(toks) == 1 and toks[0].keyword("null")):
        return None
    return join(toks)


def normalize_collation(name: str | None) -> str:
    """Collation names are case-insensitive in SQLite; no collation means BINARY."""
    return (name or DEFAULT_COLLATION).upper()


def _matches(toks: list[Token]) -> dict[int, int]:
    """Index of each opening parenthesis -> index of its closing one, in one pass."""
    closing: dict[int, int] = {}
    stack: list[int] = []
    for i, tok in enumerate(toks):
        if tok.text == "(":
            stack.append(i)
        elif tok.text == ")" and stack:
            closing[stack.pop()] = i
    return closing


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


def _top_level(toks: list[Token]) -> Iterator[tuple[int, Token]]:
    """(index, token) of each token outside parentheses, the parentheses left out."""
    depth = 0
    for i, tok in enumerate(toks):
        if tok.text == "(":
            depth += 1
        elif tok.text == ")":
            depth -= 1
        elif depth == 0:
            yield i, tok


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


def _table_body(toks: list[Token]) -> tuple[list[Token], int] | None:
    """The tokens inside a CREATE TABLE's column list, and the index of its closing `)`."""
    open_at = next((i for i, t in enumerate(toks) if t.text == "("), None)
    if open_at is None:
        return None
    end = _close(toks, open_at)
    return toks[open_at + 1 : end], end


def table_checks(create_table: str) -> list[str]:
    """The CHECK expressions of a CREATE TABLE, column- and table-level, normalized."""
    found = _table_body(tokens(create_table))
    if found is None:
        return []
    body = found[0]
    checks = []
    i = 0
    while i < len(body):
        if body[i].keyword("check") and i + 1 < len(body) and body[i + 1].text == "(":
            end = _close(body, i + 1)
            checks.append(join(body[i + 2 : end]))
            i = end
        i += 1
    return checks


def table_options(create_table: str) -> set[str]:
    """Words after the column list, and AUTOINCREMENT: {'without rowid', 'strict', ...}."""
    toks = tokens(create_table)
    found = _table_body(toks)
    if found is None:
        return set()
    body, end = found
    tail = [t.text for t in toks[end + 1 :] if not t.quoted]
    options = set()
    if "strict" in tail:
        options.add("strict")
    if "rowid" in tail and "without" in tail:
        options.add("without rowid")
    # AUTOINCREMENT is a keyword that only a PRIMARY KEY clause admits.
    if any(t.keyword("autoincrement") for t in body):
        options.add("autoincrement")
    return options


def column_collations(create_table: str) -> list[str]:
    """The collation of each column definition of a CREATE TABLE, in declaration order.

    PRAGMA table_info does not report it. The last COLLATE of a definition wins, as in
    SQLite; COLLATE inside parentheses (a CHECK, a generated expression) is not the column's.
    """
    found = _table_body(tokens(create_table))
    if found is None:
        return []
    out = []
    for part in split_top_level(found[0]):
        if part[0].keyword(*_TABLE_CONSTRAINT):
            continue
        collation = None
        for i, tok in _top_level(part):
            if i and tok.keyword("collate") and i + 1 < len(part):
                collation = name_of(part[i + 1])
        out.append(normalize_collation(collation))
    return out


def name_of(tok: Token) -> str:
    """The name a word, quoted identifier or string token stands for (words lower-case)."""
    if tok.kind == "ident":
        return tok.text[1:-1].replace('""', '"')
    if tok.kind == "string" and len(tok.text) >= 2:
        return tok.text[1:-1].replace("''", "'")
    return tok.text


def index_key(key: str, collations: dict[str, str]) -> str:
    """One key of an index, canonical: an explicit ASC, and a COLLATE naming the column's
    own collation (collations: folded column name -> collation), say nothing.
    """
    toks = tokens(key)
    if toks and toks[-1].keyword("asc"):
        toks = toks[:-1]
    suffix = toks[-1:] if toks and toks[-1].keyword("desc") else []
    toks = toks[: len(toks) - len(suffix)]
    for i, tok in _top_level(toks):
        if tok.keyword("collate") and i + 1 < len(toks):
            name = normalize_collation(name_of(toks[i + 1]))
            expr = toks[:i]
            column = fold(name_of(expr[0])) if len(expr) == 1 else None
            if column is not None and collations.get(column) == name:
                toks = expr + toks[i + 2 :]
            else:
                word = name.lower()
                spelled = Token("word", word) if _SIMPLE.match(word) else toks[i + 1]
                toks = [*expr, tok, spelled, *toks[i + 2 :]]
            break
    return join(toks + suffix)


def index_parts(create_index: str) -> tuple[list[str], str | None]:
    """The key columns or expressions of a CREATE INDEX, and its partial WHERE clause."""
    toks = tokens(create_index)
    try:
        on_at = next(i for i, t in enumerate(toks) if t.keyword("on"))
        open_at = next(i for i in range(on_at, len(toks)) if toks[i].text == "(")
    except StopIteration:
        return [], None
    end = _close(toks, open_at)
    columns = [join(part) for part in split_top_level(toks[open_at + 1 : end])]
    rest = _trim(toks[end + 1 :])
    where = join(rest[1:]) if rest and rest[0].keyword("where") else None
    return columns, where


def view_body(create_view: str) -> str:
    """The SELECT of a CREATE VIEW, normalized (the view's own name is compared apart)."""
    toks = tokens(create_view)
    for i, tok in _top_level(toks):
        if tok.keyword("as"):
            return join(_trim(toks[i + 1 :]))
    return join(toks)


def trigger_body(create_trigger: str) -> str:
    """A CREATE TRIGGER from its timing on (BEFORE/AFTER/INSTEAD OF ... END), normalized."""
    toks = tokens(create_trigger)
    for i, tok in enumerate(toks):
        if tok.keyword("before", "after", "instead", "insert", "update", "delete") and i > 2:
            return join(_trim(toks[i:]))
    return join(toks)


CONTEXT = 6  # unchanged tokens shown on each side of a change
_ALIGN_LIMIT = 250_000  # product of the changed stretches' lengths up to which they are aligned


def word_diff(old: str, new: str) -> str:
    """The two texts as one, the differing tokens marked: `a, [-b-]{+c+} from t`.

    Unchanged stretches are cut to CONTEXT tokens around each change ("..."). The common
    start and end are found in linear time; only what lies between is aligned, and only
    when it is small enough to align quickly (else it is shown replaced as a whole).
    """
    return _render(_stretches(old, new))


def word_diff_sides(old: str, new: str) -> tuple[str, str]:
    """The same word diff split in two: old with what it lost marked [-...-], new with what
    it gained marked {+...+}, both cut around the same changes (a side-by-side view)."""
    stretches = _stretches(old, new)
    return _render(stretches, "old"), _render(stretches, "new")


def _stretches(old: str, new: str) -> list[tuple[bool, list[Token], list[Token]]]:
    a, b = tokens(old), tokens(new)
    start = 0
    while start < min(len(a), len(b)) and a[start] == b[start]:
        start += 1
    end = 0
    while end < min(len(a), len(b)) - start and a[-1 - end] == b[-1 - end]:
        end += 1
    mid_a, mid_b = a[start : len(a) - end], b[start : len(b) - end]
    stretches: list[tuple[bool, list[Token], list[Token]]] = [(True, a[:start], [])]
    if len(mid_a) * len(mid_b) <= _ALIGN_LIMIT:
        matcher = difflib.SequenceMatcher(None, mid_a, mid_b, autojunk=False)
        for tag, i1, i2, j1, j2 in matcher.get_opcodes():
            stretches.append((tag == "equal", mid_a[i1:i2], mid_b[j1:j2]))
    else:
        stretches.append((False, mid_a, mid_b))
    stretches.append((True, a[len(a) - end :], []))
    return [s for s in stretches if s[1] or s[2]]


def _render(stretches: list[tuple[bool, list[Token], list[Token]]], side: str = "") -> str:
    """Unchanged tokens with canonical spacing; changes and cuts as marked pieces.

    side "old" or "new" shows only that side's part of each change."""
    items: list[Token | str] = []
    last = len(stretches) - 1
    for n, (equal, old, new) in enumerate(stretches):
        if not equal:
            lost = f"[-{join(old)}-]" if old and side != "new" else ""
            gained = f"{{+{join(new)}+}}" if new and side != "old" else ""
            if lost or gained:
                items.append(lost + gained)
            continue
        head = CONTEXT if n > 0 else 0
        tail = CONTEXT if n < last else 0
        if len(old) <= head + tail + 1:
            items += old
        else:
            items += [*old[:head], "...", *old[len(old) - tail :]]
    out: list[str] = []
    prev: Token | str | None = None
    for item in items:
        if prev is not None:
            if isinstance(prev, Token) and isinstance(item, Token):
                out.append(_gap(prev, item))
            elif isinstance(item, Token):  # after a change, or a cut ("..."): spaced apart
                tight = item.text in (",", ")", ".", ";") and prev != "..."
                out.append("" if tight else " ")
            elif isinstance(prev, Token):
                out.append("" if prev.text in ("(", ".") else " ")
            else:
                out.append(" ")
        out.append(item if isinstance(item, str) else item.text)
        prev = item
    return "".join(out)

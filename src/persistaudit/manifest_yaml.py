"""The manifest's YAML at the speed of its text: the subset dump_manifest writes, by hand.

PyYAML builds a Python node, event and mark for every scalar both ways (7 s to read and 6 s
to write 5,000 tables of 20 columns), although a manifest is a few fixed shapes. Here:
- `parse` reads block mappings, indentless block sequences and one-line flow collections of
  plain or single-quoted scalars, printable ASCII only, resolving each distinct plain scalar
  with PyYAML's own resolver and constructors. Anything else (an anchor, a tag, a comment
  after a value, a scalar over two lines, ...) returns None, and the caller reads the file
  with PyYAML, which gives the same data or the same error.
- `emit` writes each entry of the manifest directly, asking the dumper once per distinct
  scalar how it writes it in each context. An entry that the emitter could lay out
  differently (a line longer than its width, a scalar over two lines) is written by PyYAML.
Both are held to PyYAML's output by tests/unit/test_manifest_yaml.py.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import yaml

WIDTH = 100  # the dumper's line width: no line at most this long is ever folded
FLOW_KEYS = ("columns", "foreign_keys", "unique_collations")  # their mappings: one line each
BLOCK_LISTS = ("checks",)  # lists of scalars written one item a line (SQL reviews better)
_STR = "tag:yaml.org,2002:str"
_MAX_DEPTH = 20
_MAX_KEY = 1000  # libyaml refuses a simple key over 1,024 characters; no line is longer

# The subset's scalars. Plain ones start with none of YAML's indicators and hold no ':' or
# '#' (so no ': ' or ' #' either), single spaces only; in flow context no ',[]{}?' either.
_WORD = r"[A-Za-z0-9_()'\"=<>*&!%@+/\\^$~;|.-]"
_FLOW_WORD = _WORD
_BLOCK_WORD = r"[A-Za-z0-9_()'\"=<>*&!%@+/\\^$~;|.,\[\]{}?-]"
_FIRST = r"[A-Za-z0-9_(]"
_PLAIN_FLOW = rf"{_FIRST}{_FLOW_WORD}*(?: {_FLOW_WORD}+)*"
_PLAIN_BLOCK = re.compile(rf"{_FIRST}{_BLOCK_WORD}*(?: {_BLOCK_WORD}+)*")
_QUOTED = r"'(?:[^']|'')*'"
_KEY = re.compile(rf"({_PLAIN_FLOW}|{_QUOTED}):(?: (.*))?")
_FLOW_TOKEN = re.compile(rf"[{{}}\[\]]|, |: |{_QUOTED}|{_PLAIN_FLOW}")
_QUOTED_ALL = re.compile(_QUOTED)
# A tab, a CR or another control character (non-ASCII is refused before).
_CONTROLS = bytes(c for c in range(0x20) if c != 0x0A) + b"\x7f"


class _Unsupported(Exception):
    """The text leaves the subset: PyYAML reads it."""


_scalars: dict[str, Any] = {}
_resolver = yaml.resolver.Resolver()
_constructor = yaml.constructor.SafeConstructor()
_CONSTRUCTORS = {
    "tag:yaml.org,2002:int",
    "tag:yaml.org,2002:bool",
    "tag:yaml.org,2002:null",
    "tag:yaml.org,2002:float",
}


def _tag(token: str) -> str:
    """The tag PyYAML's resolver gives a plain scalar."""
    tag: str = _resolver.resolve(yaml.ScalarNode, token, (True, False))  # type: ignore[no-untyped-call]
    return tag


def _resolve(token: str) -> Any:
    """The value of a plain scalar, as PyYAML's safe loader constructs it."""
    if token in _scalars:
        return _scalars[token]
    tag = _tag(token)
    if tag == _STR:
        value: Any = token
    elif tag in _CONSTRUCTORS:
        node = yaml.ScalarNode(tag, token)
        try:
            value = _constructor.yaml_constructors[tag](_constructor, node)
        except Exception:  # PyYAML reports it, with the line
            raise _Unsupported from None
    else:  # timestamps, merge keys, '=': rare in a manifest, left to PyYAML
        raise _Unsupported
    if len(_scalars) < 100_000:
        _scalars[token] = value
    return value


def _scalar(token: str) -> Any:
    if token.startswith("'"):
        return token[1:-1].replace("''", "'")
    return _resolve(token)


_flow_plain: dict[str, Any] = {}  # token -> value, for tokens known to be flow plain scalars
_PLAIN_FLOW_ALL = re.compile(_PLAIN_FLOW)


def _flow_scalar(token: str) -> Any:
    """A plain scalar in flow context: checked once per distinct token, then looked up."""
    try:
        return _flow_plain[token]
    except KeyError:
        pass
    if not _PLAIN_FLOW_ALL.fullmatch(token):
        raise _Unsupported
    value = _resolve(token)
    if len(_flow_plain) < 100_000:
        _flow_plain[token] = value
    return value


def _simple_flow(text: str) -> Any:
    """A flow mapping or list of plain scalars only (a column, an index's columns): split."""
    inner = text[1:-1]
    if not inner:
        return {} if text[0] == "{" else []
    if text[0] == "[":
        return [_flow_scalar(item) for item in inner.split(", ")]
    mapping = {}
    pairs = inner.split(", ")
    for pair in pairs:
        key, sep, value = pair.partition(": ")
        if not sep:
            raise _Unsupported
        mapping[_flow_scalar(key)] = _flow_scalar(value)
    if len(mapping) != len(pairs):
        raise _Unsupported  # a duplicate key: PyYAML's loader says where
    return mapping


class _Reader:
    def __init__(self, text: str) -> None:
        self.indents: list[int] = []
        self.contents: list[str] = []
        for raw in text.split("\n"):
            if len(raw) > _MAX_KEY:  # a key that long, even in a flow, is libyaml's to refuse
                raise _Unsupported
            content = raw.lstrip(" ")
            if not content or content[0] == "#":
                continue  # blank and comment lines mean nothing in block context
            if content[-1] == " ":
                raise _Unsupported
            self.indents.append(len(raw) - len(content))
            self.contents.append(content)
        self.i = 0
        # A value seen before on a line of its own (a column, a type): its data, copied.
        self.seen: dict[str, tuple[bool, Any]] = {}

    def document(self) -> dict[Any, Any]:
        if not self.indents or self.indents[0] != 0:
            raise _Unsupported
        data = self.mapping(0, 0)
        if self.i != len(self.indents):
            raise _Unsupported
        return data

    def mapping(self, indent: int, depth: int) -> dict[Any, Any]:
        if depth > _MAX_DEPTH:
            raise _Unsupported
        indents, contents = self.indents, self.contents
        end = len(indents)
        data: dict[Any, Any] = {}
        while self.i < end:
            at = indents[self.i]
            if at < indent:
                break
            if at > indent:  # a scalar going on, or a misplaced line: PyYAML decides
                raise _Unsupported
            match = _KEY.fullmatch(contents[self.i])
            if match is None or len(match[1]) > _MAX_KEY:
                raise _Unsupported
            key = _scalar(match[1])
            if key in data:
                raise _Unsupported  # a duplicate key: PyYAML's loader says where
            rest = match[2]
            self.i += 1
            if rest is not None:
                data[key] = self.value(rest)
            elif self.i < end and indents[self.i] > indent:
                data[key] = self.mapping(indents[self.i], depth + 1)
            elif self.i < end and indents[self.i] == indent and contents[self.i][:2] == "- ":
                data[key] = self.sequence(indent)
            else:
                data[key] = None
        return data

    def sequence(self, indent: int) -> list[Any]:
        items = []
        indents, contents, seen = self.indents, self.contents, self.seen
        end = len(indents)
        i = self.i
        while i < end and indents[i] == indent:
            content = contents[i]
            if content[:2] != "- ":
                break
            text = content[2:]
            hit = seen.get(text)  # value(), inlined: most items are lines seen before
            if hit is None:
                items.append(self.value(text))
            else:
                items.append(hit[1].copy() if hit[0] else hit[1])
            i += 1
        self.i = i
        return items

    def value(self, text: str) -> Any:
        """The value on the rest of a line; the same text again is looked up, not parsed."""
        seen = self.seen.get(text)
        if seen is not None:
            return seen[1].copy() if seen[0] else seen[1]
        value = _inline(text, _PLAIN_BLOCK)
        if isinstance(value, (dict, list)):
            inner = value.values() if isinstance(value, dict) else value
            if any(isinstance(v, (dict, list)) for v in inner):
                return value  # nested: a shallow copy would share the inner collections
            self.seen[text] = (True, value.copy())
        else:
            self.seen[text] = (False, value)
        return value


def _inline(text: str, plain: re.Pattern[str]) -> Any:
    """A value on the rest of its line: a flow collection, a quoted or a plain scalar."""
    if text[:1] in ("{", "["):
        if (
            text[-1] == ("}" if text[0] == "{" else "]")
            and "'" not in text
            and "{" not in text[1:]
            and "[" not in text[1:]
        ):
            return _simple_flow(text)
        tokens = _flow_tokens(text)
        value, end = _flow(tokens, 0, 0)
        if end != len(tokens):
            raise _Unsupported
        return value
    if text.startswith("'"):
        if not _QUOTED_ALL.fullmatch(text):
            raise _Unsupported
        return text[1:-1].replace("''", "'")
    if not plain.fullmatch(text):
        raise _Unsupported
    return _resolve(text)


def _flow_tokens(text: str) -> list[str]:
    tokens = []
    pos = 0
    while pos < len(text):
        match = _FLOW_TOKEN.match(text, pos)
        if match is None:
            raise _Unsupported
        tokens.append(match[0])
        pos = match.end()
    return tokens


def _flow(tokens: list[str], i: int, depth: int) -> tuple[Any, int]:
    """The flow node starting at tokens[i], and the index after it."""
    if depth > _MAX_DEPTH or i >= len(tokens):
        raise _Unsupported
    token = tokens[i]
    if token == "{":
        mapping: dict[Any, Any] = {}
        i += 1
        if i < len(tokens) and tokens[i] == "}":
            return mapping, i + 1
        while True:
            key = tokens[i] if i < len(tokens) else ""
            if key[:1] in ("", "{", "}", "[", "]", ",", ":") or tokens[i + 1 : i + 2] != [": "]:
                raise _Unsupported
            name = _scalar(key)
            if name in mapping:
                raise _Unsupported
            mapping[name], i = _flow(tokens, i + 2, depth + 1)
            closing = tokens[i] if i < len(tokens) else ""
            if closing == "}":
                return mapping, i + 1
            if closing != ", ":
                raise _Unsupported
            i += 1
    if token == "[":
        sequence: list[Any] = []
        i += 1
        if i < len(tokens) and tokens[i] == "]":
            return sequence, i + 1
        while True:
            item, i = _flow(tokens, i, depth + 1)
            sequence.append(item)
            closing = tokens[i] if i < len(tokens) else ""
            if closing == "]":
                return sequence, i + 1
            if closing != ", ":
                raise _Unsupported
            i += 1
    if token[:1] in ("}", "]", ",", ":"):
        raise _Unsupported
    return _scalar(token), i + 1


def parse(text: str) -> dict[Any, Any] | None:
    """The data of a manifest text in the subset, as yaml.safe_load gives it; else None."""
    if not text.isascii():
        return None
    raw = text.encode("ascii")
    if len(raw.translate(None, _CONTROLS)) != len(raw):
        return None
    try:
        return _Reader(text).document()
    except (_Unsupported, RecursionError):
        return None


# Writing. A context is where a scalar stands: it decides plain or quoted, as libyaml does.
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class _Emitter:
    def __init__(self, dump: Callable[[Any], str]) -> None:
        self.dump = dump  # yaml.dump with the manifest's dumper and options
        contexts = ("key", "value", "fkey", "fvalue")
        self.strings: dict[str, dict[str, str]] = {c: {} for c in contexts}
        self.others: dict[tuple[str, type, Any], str] = {}
        self.lines: dict[tuple[Any, ...], str] = {}  # a flat mapping written before

    def token(self, value: Any, context: str) -> str:
        """How the dumper writes a scalar in a context: block key or value, flow key or value.

        "" (never a token) marks a scalar the dumper could write over two lines."""
        if type(value) is str:
            strings = self.strings[context]
            found = strings.get(value)
            if found is None:
                found = strings[value] = self._string(value, context)
        else:
            key = (context, type(value), value)  # True == 1, but is not written as 1
            found = self.others.get(key)
            if found is None:
                found = self.others[key] = self._ask(value, context) or ""
        if not found:
            raise _Unsupported
        return found

    def _string(self, value: str, context: str) -> str:
        if len(value) <= WIDTH and _IDENTIFIER.fullmatch(value) and _tag(value) == _STR:
            return value  # plain wherever it stands: no indicator, space or line break
        return self._ask(value, context) or ""

    def _ask(self, value: Any, context: str) -> str | None:
        if context == "key":
            text, before, after = self.dump({value: 0}), "", ": 0\n"
        elif context == "value":
            text, before, after = self.dump({"k": value}), "k: ", "\n"
        elif context == "fkey":
            text, before, after = self.dump(Flow({value: 0})), "{", ": 0}\n"
        else:
            text, before, after = self.dump(FlowList([value])), "[", "]\n"
        if not (text.startswith(before) and text.endswith(after)):
            return None
        token = text[len(before) : len(text) - len(after)]
        if "\n" in token or token.startswith("? ") or not token:
            return None
        return token

    def flow(self, value: Any) -> str:
        token = self.token
        if isinstance(value, dict):
            pairs = [
                token(k, "fkey")
                + ": "
                + (self.flow(v) if isinstance(v, (dict, list)) else token(v, "fvalue"))
                for k, v in value.items()
            ]
            return "{" + ", ".join(pairs) + "}"
        if isinstance(value, list):
            items = [
                self.flow(v) if isinstance(v, (dict, list)) else token(v, "fvalue") for v in value
            ]
            return "[" + ", ".join(items) + "]"
        return token(value, "fvalue")

    def flat(self, value: dict[Any, Any]) -> str:
        """flow(value), looked up when the same column was written before."""
        values = tuple(value.values())
        types = tuple(map(type, values))
        if float in types or dict in types or list in types:
            return self.flow(value)  # -0.0 == 0.0; lists cannot be looked up
        key = (tuple(value), values, types)
        found = self.lines.get(key)
        if found is None:
            found = self.lines[key] = self.flow(value)
        return found

    def mapping(self, data: dict[Any, Any], indent: int, out: list[str]) -> None:
        pad = " " * indent
        for key, value in data.items():
            head = f"{pad}{self.token(key, 'key')}:"
            if isinstance(value, dict):
                if key in FLOW_KEYS or not value:
                    out.append(f"{head} {self.flow(value)}")
                else:
                    out.append(head)
                    self.mapping(value, indent + 2, out)
            elif isinstance(value, list):
                scalars = all(not isinstance(v, (dict, list)) for v in value)
                if not value or (scalars and key not in BLOCK_LISTS):
                    out.append(f"{head} {self.flow(value)}")
                    continue
                out.append(head)
                for item in value:
                    if isinstance(item, dict) and key in FLOW_KEYS:
                        out.append(f"{pad}- {self.flat(item)}")
                    elif isinstance(item, (dict, list)):
                        raise _Unsupported  # a block collection in a list: PyYAML writes it
                    else:
                        out.append(f"{pad}- {self.token(item, 'value')}")
            else:
                out.append(f"{head} {self.token(value, 'value')}")


class Flow(dict):  # type: ignore[type-arg]
    """A mapping dumped on one line: one column or foreign key per line reviews well."""


class FlowList(list):  # type: ignore[type-arg]
    """A list of names dumped on one line."""


def flowed(value: Any, key: str = "") -> Any:
    """The data with Flow and FlowList where the manifest's YAML puts them on one line."""
    if isinstance(value, dict):
        items = {k: flowed(v, k) for k, v in value.items()}
        return Flow(items) if key in FLOW_KEYS else items
    if isinstance(value, list):
        if all(not isinstance(v, (dict, list)) for v in value) and key not in BLOCK_LISTS:
            return FlowList(value)
        return [flowed(v, key) for v in value]
    return value


def emit(data: dict[str, Any], dump: Callable[[Any], str], sections: tuple[str, ...]) -> str:
    """The YAML of a manifest's data, as dump(flowed(data)) writes it, entry by entry.

    Top-level keys other than sections are few: PyYAML writes them. Each entry of a section
    is written here, or by PyYAML when it could come out differently.
    """
    emitter = _Emitter(dump)
    out: list[str] = []
    head = {k: v for k, v in data.items() if k not in sections}
    for key, value in data.items():
        if key not in sections:
            continue
        if head:  # the keys before this section, in their order
            out.append(dump(flowed(head)))
            head = {}
        if not isinstance(value, dict) or not value:
            out.append(dump(flowed({key: value})))
            continue
        out.append(f"{key}:\n")
        for name, entry in value.items():
            lines: list[str] = []
            try:
                emitter.mapping({name: entry}, 2, lines)
                if max(map(len, lines)) > WIDTH:
                    raise _Unsupported
                out.append("\n".join(lines) + "\n")
            except _Unsupported:
                text = dump(flowed({key: {name: entry}}))
                out.append(text[text.index("\n") + 1 :])
    if head:
        out.append(dump(flowed(head)))
    return "".join(out)

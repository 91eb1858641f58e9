"""YAML files that people edit: parsed safely, and every problem one line with file:line.

Shared by the target config (config.py) and the expected-schema manifests (manifest.py).
Kept free of pydantic at import (a light command such as `diff` pays for no model it does
not use): a ValidationError is only read, never imported.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from persistaudit.exceptions import ConfigError, clip_value

if TYPE_CHECKING:
    from pydantic import ValidationError


def _line_of(node: yaml.Node | None, loc: tuple[int | str, ...]) -> int | None:
    """The 1-based line of the YAML node at a pydantic error location, as deep as it exists."""
    line = node.start_mark.line + 1 if node is not None else None
    for key in loc:
        if isinstance(node, yaml.MappingNode):
            match = [v for k, v in node.value if getattr(k, "value", None) == key]
            if not match:
                break
            node = match[0]
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
            node = node.value[key]
        else:
            break
        line = node.start_mark.line + 1
    return line


# libyaml's C parser when PyYAML has it: 10x faster on large manifests.
_Base: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

# Aliases may repeat a node; a document whose aliases add more nodes than this is refused
# (a "billion laughs" document of a few hundred bytes expands to gigabytes downstream).
MAX_ALIAS_NODES = 100_000
MAX_DEPTH = 100  # no config or manifest nests deeper than a dozen levels


class _Loader(_Base):  # type: ignore[misc]
    """The safe loader, with a bad tagged value (`!!int x`) reported as a YAML error."""

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep)
        except yaml.YAMLError:
            raise
        except (ValueError, TypeError, KeyError, AttributeError, OverflowError):
            shown = clip_value(node.value) if isinstance(node, yaml.ScalarNode) else "this node"
            tag = node.tag.removeprefix("tag:yaml.org,2002:")
            raise yaml.constructor.ConstructorError(
                None, None, f"{shown} is not a valid {tag}", node.start_mark
            ) from None

    def construct_mapping(self, node: yaml.Node, deep: bool = False) -> Any:
        """A key given twice is an error: YAML keeps the last silently, and a setting or
        a table written twice would be half lost without a word."""
        if isinstance(node, yaml.MappingNode):
            seen: set[tuple[str, str]] = set()
            for key, _ in node.value:
                if not isinstance(key, yaml.ScalarNode) or key.tag == "tag:yaml.org,2002:merge":
                    continue
                if (key.tag, key.value) in seen:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"duplicate key {clip_value(key.value)}", key.start_mark
                    )
                seen.add((key.tag, key.value))
        return super().construct_mapping(node, deep)


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    return []


def _check_shape(node: yaml.Node) -> None:
    """Refuse recursive aliases, deep nesting and documents whose aliases expand too far.

    Walks the node graph once (iteratively, each distinct node once), counting the nodes
    the document would have with every alias expanded, before anything is constructed.
    """
    size: dict[int, int] = {}
    open_: set[int] = set()
    stack: list[tuple[yaml.Node, int, bool]] = [(node, 0, False)]
    while stack:
        current, depth, leaving = stack.pop()
        key = id(current)
        if leaving:
            open_.discard(key)
            size[key] = 1 + sum(size[id(c)] for c in _children(current))
            continue
        if key in size:
            continue
        if key in open_:
            raise yaml.composer.ComposerError(
                None, None, "an alias refers to a node that contains it", current.start_mark
            )
        if depth > MAX_DEPTH:
            raise yaml.composer.ComposerError(
                None, None, f"nested deeper than {MAX_DEPTH} levels", current.start_mark
            )
        open_.add(key)
        stack.append((current, depth, True))
        stack.extend((child, depth + 1, False) for child in _children(current))
    if size[id(node)] - len(size) > MAX_ALIAS_NODES:
        raise yaml.composer.ComposerError(
            None,
            None,
            f"aliases expand the document by more than {MAX_ALIAS_NODES:,} nodes",
            node.start_mark,
        )


def read_yaml(path: Path, fast: Callable[[str], Any] | None = None) -> tuple[Any, str]:
    """Parse a YAML file, returning the data and its text (for line numbers on error).

    Every problem, however odd the input, is a ConfigError naming the file and line.
    fast: a parser of a subset of YAML that returns what PyYAML would, or None for a text
    outside its subset (manifest_yaml.parse).
    """
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found") from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from None
    data = fast(text) if fast is not None else None
    if data is not None:
        return data, text
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None, text
        _check_shape(node)
        return loader.construct_document(node), text
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}:{mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{path}{where}: malformed YAML: {problem}") from None
    except RecursionError:
        raise ConfigError(f"{path}: malformed YAML: nested too deeply") from None
    finally:
        loader.dispose()


def validation_message(
    path: Path, text: str, exc: ValidationError, tags: Collection[str] = ()
) -> str:
    """One line for the first error, with file, line and dotted field.

    tags: the tags of a model's unions, which pydantic puts in error locations and which are
    no YAML key (config.py's canary steps).
    """
    err = exc.errors()[0]
    loc = tuple(
        p
        for p in err["loc"]
        if not (isinstance(p, str) and (p.startswith(("function-", "branch-")) or p in tags))
    )
    msg = err["msg"].removeprefix("Value error, ")
    more = f" (and {len(exc.errors()) - 1} more)" if len(exc.errors()) > 1 else ""
    return field_message(path, text, loc, msg + more)


def field_message(path: Path, text: str, loc: tuple[int | str, ...], msg: str) -> str:
    """path:line: dotted.field: msg, for the field at loc of the YAML document in text."""
    node = yaml.compose(text, Loader=_Loader)  # only on error: line numbers cost a second parse
    field = "".join(f"{p}: " for p in [".".join(str(p) for p in loc)] if p)
    line = _line_of(node, loc)
    where = f"{path}:{line}" if line else str(path)
    return f"{where}: {field}{msg}"

"""The expected-schema manifest (expected/*.yaml): what a fresh install must create.

Format version 1. The same model is what a snapshot of a live database produces, so a
manifest can be generated, reviewed as YAML, and compared exactly (see diff.py).

The models are msgspec Structs, not pydantic models: `diff` and `snapshot` are light
commands (issue 13: 0.2 s each), and msgspec imports and validates a 5,000-table manifest in
a fraction of the time pydantic takes.
"""

from __future__ import annotations

import contextlib
import fnmatch
import functools
import gc
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import msgspec
import yaml

from persistaudit.exceptions import ConfigError, clip_value
from persistaudit.manifest_yaml import WIDTH, Flow, FlowList, emit, parse
from persistaudit.sqltext import DEFAULT_COLLATION, fold, normalize_collation
from persistaudit.yamlio import field_message, read_yaml

MANIFEST_VERSION = 1
Action = Literal["NO ACTION", "RESTRICT", "SET NULL", "SET DEFAULT", "CASCADE"]


class _Model(
    msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True, omit_defaults=True
):
    """Immutable, no unknown keys (a typo is an error, not an ignored key), and written
    without the fields that hold their default."""

    def _canonical(self, *names: str) -> None:
        """Put the default object itself in fields equal to their string default: msgspec
        leaves a default out of the output only when it is that very object, and strings
        read from SQLite are equal copies."""
        defaults = _defaults(type(self))
        for name in names:
            default = defaults[name]
            if getattr(self, name) == default:
                msgspec.structs.force_setattr(self, name, default)


@functools.cache
def _defaults(model: type[_Model]) -> dict[str, Any]:
    return {f.name: f.default for f in msgspec.structs.fields(model)}


class Column(_Model, frozen=True, kw_only=True):
    name: str
    type: str = ""  # declared type, upper-case ("" when none was declared)
    not_null: bool = False
    default: str | None = None  # normalized SQL text of the default
    collation: str = DEFAULT_COLLATION  # COLLATE of the column, upper-case
    pk: int = 0  # position in the primary key, 0 when not part of it
    generated: Literal["virtual", "stored"] | None = None
    json_valid: bool = False  # manifest only: every value must satisfy json_valid()

    def __post_init__(self) -> None:
        msgspec.structs.force_setattr(self, "collation", normalize_collation(self.collation))
        self._canonical("type", "collation")


class ForeignKey(_Model, frozen=True, kw_only=True):
    columns: list[str]
    table: str
    to: list[str]
    on_delete: Action = "NO ACTION"
    on_update: Action = "NO ACTION"

    def __post_init__(self) -> None:
        self._canonical("on_delete", "on_update")

    @property
    def key(self) -> tuple[tuple[str, ...], str]:
        return tuple(c.lower() for c in self.columns), self.table.lower()

    def label(self, table: str) -> str:
        return f"{table}({', '.join(self.columns)}) -> {self.table}({', '.join(self.to)})"


class UniqueCollation(_Model, frozen=True, kw_only=True):
    """A UNIQUE constraint that compares some of its columns with another collation than
    the columns' own (`UNIQUE (title COLLATE NOCASE)` on a BINARY column)."""

    columns: list[str]  # the constraint's columns, as in Table.unique
    collations: dict[str, str]  # column -> the collation the constraint uses for it

    def __post_init__(self) -> None:
        names = {k: normalize_collation(v) for k, v in self.collations.items()}
        msgspec.structs.force_setattr(self, "collations", names)


class Table(_Model, frozen=True, kw_only=True):
    columns: list[Column] = []
    primary_key: list[str] = []
    unique: list[list[str]] = []
    # Only the UNIQUE constraints whose collation differs from their columns' own.
    unique_collations: list[UniqueCollation] = []
    checks: list[str] = []
    foreign_keys: list[ForeignKey] = []
    without_rowid: bool = False
    strict: bool = False
    autoincrement: bool = False

    def __post_init__(self) -> None:
        """Each unique_collations entry names one UNIQUE of the table, and its columns."""
        uniques = [[fold(c) for c in u] for u in self.unique]
        for entry in self.unique_collations:
            columns = [fold(c) for c in entry.columns]
            if columns not in uniques:
                raise ValueError(
                    f"unique_collations names UNIQUE({', '.join(entry.columns)}), "
                    "which is not in unique"
                )
            uniques.remove(columns)
            stray = [c for c in entry.collations if fold(c) not in columns]
            if stray:
                raise ValueError(
                    f"unique_collations: {', '.join(stray)} is not a column of "
                    f"UNIQUE({', '.join(entry.columns)})"
                )


class Index(_Model, frozen=True, kw_only=True):
    table: str
    columns: list[str]
    unique: bool = False
    where: str | None = None


class View(_Model, frozen=True, kw_only=True):
    sql: str


class Trigger(_Model, frozen=True, kw_only=True):
    table: str
    sql: str


class Options(_Model, frozen=True, kw_only=True):
    allow_extra_tables: bool = False
    ignore: list[str] = []  # glob patterns of names
    user_version: int | None = None
    alembic_revision: str | None = None
    min_tables: Annotated[int, msgspec.Meta(ge=0)] | None = None


_SECTION_TYPES: dict[str, type[_Model]] = {
    "tables": Table,
    "indexes": Index,
    "views": View,
    "triggers": Trigger,
}
_SECTIONS = tuple(_SECTION_TYPES)


class Manifest(_Model, frozen=True, kw_only=True):
    manifest_version: Literal[1] = 1
    name: str | None = None
    options: Options = msgspec.field(default_factory=Options)
    tables: dict[str, Table]
    indexes: dict[str, Index] = {}
    views: dict[str, View] = {}
    triggers: dict[str, Trigger] = {}
    # What the database reported; compared against options.user_version/alembic_revision.
    user_version: int | None = None
    alembic_revision: str | None = None

    def __post_init__(self) -> None:
        """SQLite does not tell `Notes` from `notes`: two such entries would be one object."""
        for kind in _SECTIONS:
            seen: dict[str, str] = {}
            for name in getattr(self, kind):
                other = seen.setdefault(fold(name), name)
                if other != name:
                    raise ValueError(
                        f"{kind} {other!r} and {name!r} are one name in SQLite "
                        "(names are case-insensitive)"
                    )

    def ignored(self, name: str) -> bool:
        """SQLite's internal tables are always ignored, and so are the configured patterns
        (matched without regard to case, as SQLite matches names)."""
        patterns = ["sqlite_*", *self.options.ignore]
        return any(fnmatch.fnmatchcase(fold(name), fold(p)) for p in patterns)


M = TypeVar("M", bound=_Model)


def replace(obj: M, **changes: Any) -> M:
    """A copy of a model with some fields changed (the models are immutable)."""
    return msgspec.structs.replace(obj, **changes)


class ManifestDataError(ValueError):
    """Manifest data that does not fit the model, at loc (keys and list positions)."""

    def __init__(self, loc: tuple[int | str, ...], message: str) -> None:
        super().__init__(f"{'.'.join(map(str, loc))}: {message}" if loc else message)
        self.loc = loc
        self.message = message


# msgspec's error: "<message> - at `$.tables[...][0].name`" (a dict's keys are not shown).
_AT = re.compile(r"^(.*) - at `\$(.*)`$", re.DOTALL)
_STEP = re.compile(r"\.([A-Za-z_][A-Za-z0-9_]*)|\[(\d+)\]|\[\.\.\.\]")
_UNKNOWN = re.compile(r"^Object contains unknown field `(.*)`$", re.DOTALL)


def _where(error: msgspec.ValidationError) -> ManifestDataError:
    text = str(error)
    match = _AT.match(text)
    message, path = (match.group(1), match.group(2)) if match else (text, "")
    loc: list[int | str] = []
    for step in _STEP.finditer(path):
        if step.group(0) == "[...]":
            break  # a key of a mapping (UniqueCollation.collations): the mapping's line
        loc.append(step.group(1) if step.group(1) is not None else int(step.group(2)))
    unknown = _UNKNOWN.match(message)
    if unknown:
        loc.append(unknown.group(1))
        message = "unknown field"
    return ManifestDataError(tuple(loc), message[:1].lower() + message[1:])


def _convert(data: Any, model: type[M], loc: tuple[int | str, ...]) -> M:
    try:
        return msgspec.convert(data, model)
    except msgspec.ValidationError as exc:
        inner = _where(exc)
        raise ManifestDataError(loc + inner.loc, inner.message) from None


def from_data(data: Any) -> Manifest:
    """The Manifest of plain data (parsed YAML or JSON), or ManifestDataError saying where
    it does not fit. Each object is converted on its own, so an error names its key."""
    if not isinstance(data, dict):
        raise ManifestDataError((), "expected a mapping with manifest_version and tables")
    top = {k: v for k, v in data.items() if k not in _SECTIONS}
    sections: dict[str, dict[str, Any]] = {}
    for key in _SECTIONS:
        if key not in data:
            continue
        entries = data[key]
        if not isinstance(entries, dict):
            raise ManifestDataError((key,), f"expected a mapping, got {type(entries).__name__}")
        model = _SECTION_TYPES[key]
        converted = {}
        for name, entry in entries.items():
            if not isinstance(name, str):
                raise ManifestDataError((key,), f"a name is {clip_value(name)}, not a string")
            if entry is None and key == "tables":
                entry = {}  # `notes:` alone: a table of which nothing more is promised
            converted[name] = _convert(entry, model, (key, name))
        sections[key] = converted
    if "tables" not in data:
        raise ManifestDataError((), "object missing required field `tables`")
    shell = _convert({**top, "tables": {}}, Manifest, ())
    try:
        return replace(shell, **sections)
    except ValueError as exc:
        raise ManifestDataError((), str(exc)) from None


def load_manifest(path: Path) -> Manifest:
    with _bulk():
        return _load(path)


def _load(path: Path) -> Manifest:
    data, text = read_yaml(path, fast=parse)
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping with manifest_version and tables")
    if "manifest_version" in data and data["manifest_version"] != MANIFEST_VERSION:
        raise ConfigError(
            f"{path}: manifest_version {clip_value(data['manifest_version'])} is not supported "
            f"(this persistaudit reads version {MANIFEST_VERSION})"
        )
    if "manifest_version" not in data:
        raise ConfigError(f"{path}: manifest_version: missing (this persistaudit reads 1)")
    try:
        return from_data(data)
    except ManifestDataError as exc:
        raise ConfigError(field_message(path, text, exc.loc, exc.message)) from None


class _Dumper(getattr(yaml, "CSafeDumper", yaml.SafeDumper)):  # type: ignore[misc]
    """libyaml's emitter when available; the representers below are what make it stable."""


_Dumper.add_representer(
    Flow, lambda d, v: d.represent_mapping("tag:yaml.org,2002:map", v, flow_style=True)
)
_Dumper.add_representer(
    FlowList, lambda d, v: d.represent_sequence("tag:yaml.org,2002:seq", v, flow_style=True)
)


def _dump(data: Any) -> str:
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=WIDTH)


@contextlib.contextmanager
def _bulk() -> Iterator[None]:
    """No cyclic garbage collection while a manifest is built or written: its 100,000s of
    objects hold no cycles, and the collections they would trigger take half the time."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def plain(manifest: Manifest) -> dict[str, Any]:
    """The manifest as plain data, without the fields that hold their default."""
    data: dict[str, Any] = msgspec.to_builtins(manifest)
    if not data.get("options", True):
        del data["options"]  # all defaults (msgspec keeps a default_factory's value)
    return data


def dump_manifest(manifest: Manifest) -> str:
    """Stable YAML: keys in a fixed order, objects sorted by name, defaults left out."""
    with _bulk():
        data = plain(manifest)
        data["manifest_version"] = MANIFEST_VERSION
        for key in _SECTIONS:
            if key in data:
                data[key] = {name: data[key][name] for name in sorted(data[key])}
        order = [
            "manifest_version",
            "name",
            "options",
            "user_version",
            "alembic_revision",
            *_SECTIONS,
        ]
        ordered = {k: data[k] for k in order if k in data}
        body = emit(ordered, _dump, _SECTIONS)
    return "# persistaudit expected-schema manifest; format: README.md#manifests\n" + body

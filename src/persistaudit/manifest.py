"""The expected-schema manifest (expected/*.yaml): what a fresh install must create.

Format version 1. The same model is what a snapshot of a live database produces, so a
manifest can be generated, reviewed as YAML, and compared exactly (see diff.py).
"""

from __future__ import annotations

import contextlib
import fnmatch
import gc
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from persistaudit.exceptions import ConfigError, clip_value
from persistaudit.manifest_yaml import WIDTH, Flow, FlowList, emit, parse
from persistaudit.sqltext import DEFAULT_COLLATION, fold, normalize_collation
from persistaudit.yamlio import read_yaml, validation_message

MANIFEST_VERSION = 1
Action = Literal["NO ACTION", "RESTRICT", "SET NULL", "SET DEFAULT", "CASCADE"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Column(_Model):
    name: str
    type: str = ""  # declared type, upper-case ("" when none was declared)
    not_null: bool = False
    default: str | None = None  # normalized SQL text of the default
    collation: str = DEFAULT_COLLATION  # COLLATE of the column, upper-case
    pk: int = 0  # position in the primary key, 0 when not part of it
    generated: Literal["virtual", "stored"] | None = None
    json_valid: bool = False  # manifest only: every value must satisfy json_valid()

    @field_validator("collation")
    @classmethod
    def _collation(cls, value: str) -> str:
        return normalize_collation(value)


class ForeignKey(_Model):
    columns: list[str]
    table: str
    to: list[str]
    on_delete: Action = "NO ACTION"
    on_update: Action = "NO ACTION"

    @property
    def key(self) -> tuple[tuple[str, ...], str]:
        return tuple(c.lower() for c in self.columns), self.table.lower()

    def label(self, table: str) -> str:
        return f"{table}({', '.join(self.columns)}) -> {self.table}({', '.join(self.to)})"


class UniqueCollation(_Model):
    """A UNIQUE constraint that compares some of its columns with another collation than
    the columns' own (`UNIQUE (title COLLATE NOCASE)` on a BINARY column)."""

    columns: list[str]  # the constraint's columns, as in Table.unique
    collations: dict[str, str]  # column -> the collation the constraint uses for it

    @field_validator("collations")
    @classmethod
    def _names(cls, value: dict[str, str]) -> dict[str, str]:
        return {k: normalize_collation(v) for k, v in value.items()}


class Table(_Model):
    columns: list[Column] = Field(default_factory=list)
    primary_key: list[str] = Field(default_factory=list)
    unique: list[list[str]] = Field(default_factory=list)
    # Only the UNIQUE constraints whose collation differs from their columns' own.
    unique_collations: list[UniqueCollation] = Field(default_factory=list)
    checks: list[str] = Field(default_factory=list)
    foreign_keys: list[ForeignKey] = Field(default_factory=list)
    without_rowid: bool = False
    strict: bool = False
    autoincrement: bool = False

    @model_validator(mode="after")
    def _collations_name_constraints(self) -> Table:
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
        return self


class Index(_Model):
    table: str
    columns: list[str]
    unique: bool = False
    where: str | None = None


class View(_Model):
    sql: str


class Trigger(_Model):
    table: str
    sql: str


class Options(_Model):
    allow_extra_tables: bool = False
    ignore: list[str] = Field(default_factory=list, description="glob patterns of names")
    user_version: int | None = None
    alembic_revision: str | None = None
    min_tables: int | None = Field(default=None, ge=0)


class Manifest(_Model):
    manifest_version: Literal[1]
    name: str | None = None
    options: Options = Options()
    tables: dict[str, Table]
    indexes: dict[str, Index] = Field(default_factory=dict)
    views: dict[str, View] = Field(default_factory=dict)
    triggers: dict[str, Trigger] = Field(default_factory=dict)
    # What the database reported; compared against options.user_version/alembic_revision.
    user_version: int | None = None
    alembic_revision: str | None = None

    @model_validator(mode="after")
    def _one_name_per_object(self) -> Manifest:
        """SQLite does not tell `Notes` from `notes`: two such entries would be one object."""
        for kind in ("tables", "indexes", "views", "triggers"):
            seen: dict[str, str] = {}
            for name in getattr(self, kind):
                other = seen.setdefault(fold(name), name)
                if other != name:
                    raise ValueError(
                        f"{kind} {other!r} and {name!r} are one name in SQLite "
                        "(names are case-insensitive)"
                    )
        return self

    def ignored(self, name: str) -> bool:
        """SQLite's internal tables are always ignored, and so are the configured patterns
        (matched without regard to case, as SQLite matches names)."""
        patterns = ["sqlite_*", *self.options.ignore]
        return any(fnmatch.fnmatchcase(fold(name), fold(p)) for p in patterns)


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
    tables = data.get("tables")
    if isinstance(tables, dict):
        data = {**data, "tables": {k: v or {} for k, v in tables.items()}}
    try:
        return Manifest.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(validation_message(path, text, exc)) from None


class _Dumper(getattr(yaml, "CSafeDumper", yaml.SafeDumper)):  # type: ignore[misc]
    """libyaml's emitter when available; the representers below are what make it stable."""


_Dumper.add_representer(
    Flow, lambda d, v: d.represent_mapping("tag:yaml.org,2002:map", v, flow_style=True)
)
_Dumper.add_representer(
    FlowList, lambda d, v: d.represent_sequence("tag:yaml.org,2002:seq", v, flow_style=True)
)
_SECTIONS = ("tables", "indexes", "views", "triggers")


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


def dump_manifest(manifest: Manifest) -> str:
    """Stable YAML: keys in a fixed order, objects sorted by name, defaults left out."""
    with _bulk():
        data = manifest.model_dump(mode="json", exclude_defaults=True)
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

"""The expected-schema manifest (expected/*.yaml): what a fresh install must create."""

from __future__ import annotations

import fnmatch
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from persistaudit.config import read_yaml, validation_message
from persistaudit.exceptions import ConfigError


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TableSpec(_Model):
    """A table the release promises. Columns and constraints come with the full diff."""


class ManifestOptions(_Model):
    allow_extra_tables: bool = False
    ignore: list[str] = Field(default_factory=list, description="glob patterns of names")


class Manifest(_Model):
    manifest_version: Literal[1]
    name: str | None = None
    tables: dict[str, TableSpec]
    views: list[str] = Field(default_factory=list)
    options: ManifestOptions = ManifestOptions()

    def ignored(self, name: str) -> bool:
        """SQLite's internal tables are always ignored, and so are the configured patterns."""
        patterns = ["sqlite_*", *self.options.ignore]
        return any(fnmatch.fnmatchcase(name, p) for p in patterns)


def load_manifest(path: Path) -> Manifest:
    data, node = read_yaml(path)
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping with manifest_version and tables")
    data = {**data, "tables": {k: v or {} for k, v in (data.get("tables") or {}).items()}}
    try:
        return Manifest.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(validation_message(path, node, exc)) from None

"""Host paths in a results document, shown relative: a report is read on other machines.

An absolute path such as /work/ci-runner-7/checkout/fixtures/app/audit.yaml says nothing to
a reader elsewhere and tells about the machine that ran the audit. Paths under the config's
folder are shown relative to the folder of results.json (the report's folder), or, for a
document that says no more, relative to the config's folder, and so are they when the two
folders share nothing but the root (`../../../work/ci/...` would name this machine's
folders, which relative paths are there to leave out); the run's scratch folders
(removed when the run ends) as $TMPDIR/.... Container paths (/data/app.db) are not host
paths and stay as they are.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path, PurePosixPath
from typing import Any

SCRATCH_PREFIX = "persistaudit-"
# What results.json names as the config when a persistaudit_config fixture built it.
FIXTURE_ORIGIN = "persistaudit_config fixture"
_END = r"(?=/|$|[\s'\":;,)\]}])"  # where a path ends in a command line or a sentence
# target.paths_relative_to in a written document whose paths are the config folder's.
PATHS_KEY = "paths_relative_to"
FROM_CONFIG = "configuration"


def relative(doc: dict[str, Any], base: Path | None) -> dict[str, Any]:
    """The document with its host paths relative to base (the folder of results.json).

    Without a base, paths are relative to the config's folder. A document already written
    with relative paths comes back unchanged.
    """
    target = doc.get("target") or {}
    config = target.get("config")
    base = _usable(config, base)
    rules: list[tuple[re.Pattern[str], str]] = []
    from_config = False
    if isinstance(config, str) and PurePosixPath(config).is_absolute():
        folder = os.path.dirname(config)
        shown = _relpath(folder, base) if base is not None else "."
        rules.append((re.compile(r"(?<![\w./-])" + re.escape(folder) + _END), shown))
        config = _relpath(config, base) if base is not None else os.path.basename(config)
        from_config = base is None
    scratch = tempfile.gettempdir().rstrip("/") + "/" + SCRATCH_PREFIX
    rules.append((re.compile(re.escape(scratch)), "$TMPDIR/" + SCRATCH_PREFIX))
    out = _rewrite(doc, rules)
    if config != target.get("config"):
        out["target"] = {**out["target"], "config": config}
    if from_config:  # what relative_to says of the document once it is written
        out["target"] = {**out["target"], PATHS_KEY: FROM_CONFIG}
    return dict(out)


def relative_to(doc: dict[str, Any], base: Path | None) -> str:
    """What the host paths of relative(doc, base) are relative to, for the report to say."""
    target = doc.get("target") or {}
    config = target.get("config")
    if not isinstance(config, str) or config == FIXTURE_ORIGIN:
        return ""
    written_so = target.get(PATHS_KEY) == FROM_CONFIG
    if written_so or (PurePosixPath(config).is_absolute() and _usable(config, base) is None):
        return "the configuration's folder"
    return "the folder of results.json"


def _usable(config: object, base: Path | None) -> Path | None:
    """base, unless the config's folder and base share no folder but the root."""
    if base is None or not isinstance(config, str) or not PurePosixPath(config).is_absolute():
        return base
    shared = os.path.commonpath([os.path.dirname(config), os.path.abspath(base)])
    return base if shared != os.path.sep else None


def _relpath(path: str, base: Path) -> str:
    return Path(os.path.relpath(path, os.path.abspath(base))).as_posix()


def _rewrite(value: Any, rules: list[tuple[re.Pattern[str], str]]) -> Any:
    if isinstance(value, str):
        for pattern, shown in rules:
            value = pattern.sub(shown.replace("\\", "\\\\"), value)  # shown is no template
        return value
    if isinstance(value, dict):
        return {k: _rewrite(v, rules) for k, v in value.items()}
    if isinstance(value, list):
        return [_rewrite(v, rules) for v in value]
    return value

"""Where the bundled suites and report templates are: in the wheel, or in the source tree."""

from __future__ import annotations

from pathlib import Path

from persistaudit.exceptions import PersistauditError

_PACKAGE = Path(__file__).resolve().parent
_SOURCE_TREE = {
    "suites": _PACKAGE.parent.parent / "suites",
    "templates": _PACKAGE.parent.parent / "reports" / "templates",
}


def bundled(name: str) -> Path:
    """A wheel carries them under persistaudit/_bundled; an editable install reads the repo."""
    for candidate in (_PACKAGE / "_bundled" / name, _SOURCE_TREE[name]):
        if candidate.is_dir():
            return candidate
    raise PersistauditError(f"persistaudit is installed without its {name}; reinstall it")

"""Error hints work for a pip install as well as a checkout: none sends a user to `make`."""

from __future__ import annotations

from pathlib import Path

import persistaudit

PACKAGE = Path(persistaudit.__file__).parent


def test_no_message_asks_for_make_or_the_repository_s_scripts_alone() -> None:
    for path in sorted(PACKAGE.rglob("*.py")):
        text = path.read_text()
        assert "make setup" not in text, path
        assert "make test" not in text, path
        for line in text.splitlines():
            if "scripts/setup.sh" in line:  # only as the checkout's alternative
                assert "in a persistaudit checkout" in line, f"{path}: {line.strip()}"

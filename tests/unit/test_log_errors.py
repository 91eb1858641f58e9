"""Which log lines are errors, and which are new since the fresh install."""

from __future__ import annotations

import pytest

from persistaudit.log_errors import is_error, new_errors


@pytest.mark.parametrize(
    "line",
    [
        "2026-11-25 10:00:01 ERROR init: migration 1 failed",
        "FATAL: could not open file",
        'time=x level=error msg="boom"',
        '{"level": "error", "msg": "boom"}',
        "Traceback (most recent call last):",
        "sqlite3.OperationalError: table users already exists",
        "  raise ValueError: bad",
    ],
)
def test_error_lines(line: str) -> None:
    assert is_error(line)


@pytest.mark.parametrize(
    "line",
    [
        "ready on port 8080, 0 errors",
        "error_count=0",
        "INFO applied migration 4: tags",
        "GET /errors -> 200",
        "terror at the disco",
    ],
)
def test_lines_that_are_not_errors(line: str) -> None:
    assert not is_error(line)


def test_only_errors_the_fresh_install_did_not_log_are_new() -> None:
    fresh = ["12:00:01 ERROR cache 0x1f2e not warmed (attempt 1)", "ready"]
    restart = [
        "12:05:09 ERROR cache 0x9abc not warmed (attempt 3)",  # the same line, other numbers
        "ERROR init: migration 1 failed",
        "ERROR init: migration 2 failed",  # the same shape as the line before: once
        "ready",
    ]
    assert new_errors(restart, fresh) == ["ERROR init: migration 1 failed"]
    assert new_errors(fresh, []) == ["12:00:01 ERROR cache 0x1f2e not warmed (attempt 1)"]

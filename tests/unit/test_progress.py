"""Progress: plain lines, --quiet, colour rules, and the live status line (no terminal
needed: a stream that says it is one)."""

from __future__ import annotations

import io
import time

import pytest

from persistaudit import activity
from persistaudit.progress import Progress, colour_wanted, live_possible
from persistaudit.redact import Redactor

SECRETS = Redactor({"API_TOKEN": "hunter2"})


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_plain_lines_are_redacted_and_carry_the_elapsed_time() -> None:
    out = io.StringIO()
    Progress(SECRETS, out).line("token hunter2 sent", "passed")
    assert out.getvalue().endswith("] token [REDACTED] sent  PASSED\n")
    assert out.getvalue().startswith("[")
    assert "\x1b" not in out.getvalue()  # not a terminal: no colour


def test_quiet_shows_only_errors_and_warnings() -> None:
    out = io.StringIO()
    progress = Progress(SECRETS, out, mode="quiet")
    progress.line("fresh install of demo on an empty volume")
    progress.line("fresh_install.schema   3 tables missing", "failed")
    progress.line("warning: could not remove volume x")
    progress.line("error: the engine stopped answering")
    assert [line.split("] ", 1)[1] for line in out.getvalue().splitlines()] == [
        "warning: could not remove volume x",
        "error: the engine stopped answering",
    ]


@pytest.mark.parametrize(
    ("env", "tty", "expected"),
    [
        ({}, False, False),
        ({}, True, True),
        ({"NO_COLOR": "1"}, True, False),
        ({"NO_COLOR": "1", "FORCE_COLOR": "1"}, True, False),
        ({"FORCE_COLOR": "1"}, False, True),
        ({"FORCE_COLOR": "0"}, False, False),
        ({"NO_COLOR": ""}, True, True),  # set but empty: no-color.org says it does not count
    ],
)
def test_colour_follows_no_color_and_force_color(
    env: dict[str, str], tty: bool, expected: bool
) -> None:
    assert colour_wanted(Tty() if tty else io.StringIO(), env) is expected


def test_a_live_status_needs_a_real_terminal_even_with_force_color() -> None:
    assert not live_possible(io.StringIO(), {"FORCE_COLOR": "1"})
    assert live_possible(Tty(), {"TERM": "xterm"})
    assert not live_possible(Tty(), {"TERM": "dumb"})


def test_the_status_follows_stages_checks_and_waits() -> None:
    progress = Progress(SECRETS, io.StringIO())
    progress.start()
    try:
        with activity.during("stage", "restart"):
            progress.check("restart.retention", 5, 14)
            with activity.during("waiting", "readiness: GET /health?token=hunter2"):
                text = progress.status_text()
            after = progress.status_text()
    finally:
        progress.stop()
    assert "stage restart | check 5 of 14 restart.retention | waiting for readiness" in text
    assert "hunter2" not in text
    assert "waiting" not in after
    with activity.during("stage", "recreate"):  # stopped: it no longer listens
        assert "recreate" not in progress.status_text()


def test_live_mode_draws_the_status_and_prints_lines_above_it() -> None:
    out = Tty()
    progress = Progress(SECRETS, out, mode="live", colour=False)
    progress.start()
    try:
        progress.check("fresh_install.schema", 3, 14)
        with activity.during("waiting", "readiness: HTTP GET /health"):
            time.sleep(0.3)  # a few refreshes, with the spinner
            progress.line("token hunter2 in a line", "failed")
    finally:
        progress.stop()
    text = out.getvalue()
    assert "check 3 of 14 fresh_install.schema" in text
    assert "| waiting for readiness: HTTP GET" in text
    assert "] token [REDACTED] in a line  \x1b[1mFAILED" in text  # bold, colour off
    assert "hunter2" not in text
    progress.line("after the status is gone")
    assert out.getvalue().endswith("] after the status is gone\n")

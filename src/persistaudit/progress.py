"""Progress: what the audit is doing and how long it has taken.

Three modes. `plain`: one line per event (CI logs keep them readable). `live`: the same
lines, under a status line redrawn in place (stage, check n of N, elapsed, a spinner while
the audit waits for readiness or a stop), for a terminal. `quiet`: only errors and
warnings. Colour follows NO_COLOR and FORCE_COLOR, else whether the stream is a terminal.
Every text shown goes through the redactor first, the status line's too.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Mapping
from typing import Any, Literal, TextIO

from persistaudit import activity
from persistaudit.redact import Redactor

Mode = Literal["plain", "live", "quiet"]
MODES: tuple[Mode, ...] = ("plain", "live", "quiet")
COLOURS = {
    "passed": "green",
    "failed": "red",
    "error": "red",
    "blocked": "yellow",
    "skipped": "cyan",
}
QUIET_PREFIXES = ("error:", "warning:")  # what --quiet still shows
SPINNER, SPINNER_S = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏", 0.08  # rich's "dots"


def colour_wanted(stream: TextIO, env: Mapping[str, str] | None = None) -> bool:
    """NO_COLOR (any value) turns colour off, FORCE_COLOR (not 0) on; else only on a tty."""
    env = os.environ if env is None else env
    if env.get("NO_COLOR"):
        return False
    if env.get("FORCE_COLOR", "") not in ("", "0", "false"):
        return True
    return _isatty(stream)


def live_possible(stream: TextIO, env: Mapping[str, str] | None = None) -> bool:
    """A status redrawn in place needs a real terminal (FORCE_COLOR gives colour, not that)."""
    env = os.environ if env is None else env
    return _isatty(stream) and env.get("TERM", "") != "dumb"


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


class Progress:
    def __init__(
        self,
        redactor: Redactor,
        stream: TextIO | None = None,
        writer: Callable[[Callable[[], None]], None] | None = None,
        *,
        mode: Mode = "plain",
        colour: bool | None = None,
    ) -> None:
        self.started = time.monotonic()
        self.redactor = redactor
        self.stream = stream or sys.stderr
        self._writer = writer or (lambda emit: emit())
        self.mode = mode
        self.colour = colour_wanted(self.stream) if colour is None else colour
        self.stages: list[str] = []
        self.waits: list[tuple[str, float]] = []  # what is waited for, since when
        self.current = ""  # the check under way: "check 3 of 14 restart.retention"
        self._live: Any = None  # rich.live.Live while the live status is shown
        self._unlisten: Callable[[], None] | None = None

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    # -- lines ---------------------------------------------------------------------------------

    def line(self, message: str, status: str | None = None) -> None:
        text = self.redactor.text(message)
        if self.mode == "quiet" and not text.startswith(QUIET_PREFIXES):
            return
        text = f"[{self.elapsed():7.1f}s] {text}"
        if self._live is not None:
            self._print_live(text, status)
            return
        if status:
            text += f"  {status.upper()}"
            if self.colour:
                text = text.replace(
                    status.upper(), f"\x1b[1;{_ansi(status)}m{status.upper()}\x1b[0m"
                )

        def emit() -> None:
            print(text, file=self.stream, flush=True)

        self._writer(emit)

    # -- the status line -----------------------------------------------------------------------

    def check(self, check_id: str, number: int, total: int) -> None:
        """A check begins: the status line says which, and how many there are."""
        self.current = f"check {number} of {total} {check_id}"

    def on_activity(self, kind: str, text: str | None) -> None:
        """activity's listener: stages and waits, nested (a stage may run another)."""
        if kind == "stage":
            if text is None:
                self.stages[-1:] = []
            else:
                self.stages.append(text)
        elif kind == "waiting":
            if text is None:
                self.waits[-1:] = []
            else:
                self.waits.append((text, time.monotonic()))

    def status_text(self) -> str:
        """The live status: elapsed, stage, check n of N, what is waited for and how long."""
        parts = [f"{self.elapsed():.0f}s"]
        if self.stages:
            parts.append(f"stage {self.stages[-1]}")
        if self.current:
            parts.append(self.current)
        if self.waits:
            what, since = self.waits[-1]
            parts.append(f"waiting for {what} ({time.monotonic() - since:.0f}s)")
        return self.redactor.text(" | ".join(parts))

    def start(self) -> None:
        """Show the status line (live mode) and follow the audit's stages and waits."""
        if self._unlisten is None:
            self._unlisten = activity.listen(self.on_activity)
        if self.mode != "live" or self._live is not None:
            return
        from rich.console import Console
        from rich.live import Live

        console = Console(
            file=self.stream,
            force_terminal=True,
            no_color=not self.colour,
            highlight=False,
            soft_wrap=False,
        )
        self._live = Live(
            _Status(self),
            console=console,
            refresh_per_second=8,
            transient=True,
            redirect_stdout=False,
            redirect_stderr=False,
        )
        self._live.start()

    def stop(self) -> None:
        """Remove the status line; lines from now on are plain. Idempotent."""
        if self._unlisten is not None:
            self._unlisten()
            self._unlisten = None
        live, self._live = self._live, None
        if live is not None:
            live.stop()

    def _print_live(self, text: str, status: str | None) -> None:
        from rich.text import Text

        line = Text(text)
        if status:
            line.append("  ")
            line.append(status.upper(), style=f"bold {COLOURS.get(status, 'cyan')}")
        self._live.console.print(line, soft_wrap=True)  # long lines: the terminal wraps

    def _renderable(self) -> Any:
        """One line, cut to the terminal's width: a spinner while something is waited for."""
        from rich.text import Text

        mark = " "
        if self.waits:
            mark = SPINNER[int(time.monotonic() / SPINNER_S) % len(SPINNER)]
        return Text(
            f"{mark} {self.status_text()}",
            style="dim" if self.colour else "",
            no_wrap=True,
            overflow="ellipsis",
        )


class _Status:
    """The live status line, rendered afresh at every refresh."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress

    def __rich__(self) -> Any:
        return self.progress._renderable()


_installed: Progress | None = None


def install(progress: Progress | None) -> None:
    """The progress the pytest plugin reports to (the CLI's, drawn on the real terminal)."""
    global _installed
    _installed = progress


def installed() -> Progress | None:
    return _installed


def _ansi(status: str) -> int:
    return {"green": 32, "red": 31, "yellow": 33, "cyan": 36}[COLOURS.get(status, "cyan")]

"""Progress lines: what the audit is doing and how long it has taken.

Plain lines always (CI logs keep them readable); colour only on a terminal.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TextIO

from persistaudit.redact import Redactor

COLOURS = {
    "passed": "green",
    "failed": "red",
    "error": "red",
    "blocked": "yellow",
    "skipped": "cyan",
}


class Progress:
    def __init__(
        self,
        redactor: Redactor,
        stream: TextIO | None = None,
        writer: Callable[[Callable[[], None]], None] | None = None,
    ) -> None:
        self.started = time.monotonic()
        self.redactor = redactor
        self.stream = stream or sys.stderr
        self._writer = writer or (lambda emit: emit())
        self.colour = self.stream.isatty()

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def line(self, message: str, status: str | None = None) -> None:
        text = f"[{self.elapsed():7.1f}s] {self.redactor.text(message)}"
        if status:
            text += f"  {status.upper()}"
            if self.colour:
                text = text.replace(
                    status.upper(), f"\x1b[1;{_ansi(status)}m{status.upper()}\x1b[0m"
                )

        def emit() -> None:
            print(text, file=self.stream, flush=True)

        self._writer(emit)


def _ansi(status: str) -> int:
    return {"green": 32, "red": 31, "yellow": 33, "cyan": 36}[COLOURS.get(status, "cyan")]

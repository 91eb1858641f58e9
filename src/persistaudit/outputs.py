"""Write an audit's outputs into its folder, and only there: whole, or not at all.

The files are written to a staging folder beside the output folder and moved in together
once complete, results.json last (a folder without it holds no verdict). An interrupted run
leaves the previous run's files as they were. One run at a time writes to a folder: it holds
a lock on the folder (flock, released by the kernel when the process dies).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from persistaudit import signals
from persistaudit.exceptions import OutputBusy, PersistauditError
from persistaudit.junit import render_junit
from persistaudit.redact import Redactor
from persistaudit.report import render_markdown

EVIDENCE_DIR = "evidence"
RESULTS = "results.json"
# Moved in in this order, results.json last; the previous run's go out results.json first.
OUTPUT_NAMES = (EVIDENCE_DIR, "report.md", "junit.xml", RESULTS)


def safe_name(name: str) -> str:
    """A file name that cannot leave the evidence folder."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip(".-")
    return cleaned or "evidence"


class OutputFolder:
    """An output folder this process holds: locked, written beside it, moved in whole.

    With defer, write_outputs only stages the files and the holder publishes them (the CLI,
    after its last check for an interrupt); otherwise write_outputs publishes at once.
    """

    def __init__(self, out: Path, *, defer: bool) -> None:
        self.out = out
        self.defer = defer
        self.staging: Path | None = None
        self._fd = -1
        self._created = False

    def _acquire(self) -> None:
        out = self.out
        try:
            self._created = not out.exists()
            out.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(out, os.O_RDONLY | os.O_DIRECTORY)
        except OSError as exc:
            raise PersistauditError(
                f"{out}: cannot use it as the output folder: {exc.strerror}"
            ) from None
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._fd)
            raise OutputBusy(
                f"{out}: another persistaudit run is writing to this folder. "
                "Hint: wait until it ends, or give another --out"
            ) from None
        # What a killed run left beside it: no other run can be using it while we hold the lock.
        for stale in (*self._siblings("partial"), *self._siblings("previous")):
            shutil.rmtree(stale, ignore_errors=True)
        try:
            self.staging = Path(self._mkdtemp("partial"))
        except OSError as exc:
            self._release()
            raise PersistauditError(
                f"{out}: cannot write beside it in {out.parent}: {exc.strerror}"
            ) from None

    def _siblings(self, kind: str) -> list[Path]:
        return sorted(self.out.parent.glob(f".{self.out.name}.{kind}-*"))

    def _mkdtemp(self, kind: str) -> str:
        return tempfile.mkdtemp(dir=self.out.parent, prefix=f".{self.out.name}.{kind}-")

    def _release(self) -> None:
        if self.staging is not None:
            shutil.rmtree(self.staging, ignore_errors=True)
            self.staging = None
        if self._created:
            with contextlib.suppress(OSError):
                self.out.rmdir()  # only if still empty: an interrupted first run leaves nothing
        if self._fd >= 0:
            os.close(self._fd)  # releases the lock
            self._fd = -1

    @property
    def staged(self) -> bool:
        return self.staging is not None and (self.staging / RESULTS).is_file()

    def stage(self, results: dict[str, Any], files: dict[str, str]) -> list[Path]:
        """evidence/*, then results.json (with their digests), report.md and junit.xml.

        Written into the staging folder; returns the paths they will have in the folder.
        """
        assert self.staging is not None, "stage() after the folder was released"
        results["evidence_files"] = {
            f"{EVIDENCE_DIR}/{safe_name(name)}": hashlib.sha256(text.encode()).hexdigest()
            for name, text in sorted(files.items())
        }
        written = []
        evidence = self.staging / EVIDENCE_DIR
        for name, content in sorted(files.items()):
            target = evidence / safe_name(name)
            if target.resolve().parent != evidence.resolve():
                raise PersistauditError(f"evidence file name {name!r} leaves {evidence}")
            evidence.mkdir(exist_ok=True)
            target.write_text(content, encoding="utf-8")
            written.append(self.out / EVIDENCE_DIR / target.name)
        for name, text in (
            (RESULTS, json.dumps(results, indent=2, sort_keys=False) + "\n"),
            ("report.md", render_markdown(results)),
            ("junit.xml", render_junit(results)),
        ):
            (self.staging / name).write_text(text, encoding="utf-8")
            written.append(self.out / name)
        return written

    def publish(self) -> None:
        """Replace the previous run's outputs with the staged ones. Signals wait meanwhile."""
        staging = self.staging
        assert staging is not None, "publish() after the folder was released"
        assert self.staged, "publish() before stage()"
        with signals.shielded():
            previous = Path(self._mkdtemp("previous"))
            for name in reversed(OUTPUT_NAMES):  # results.json first
                if (self.out / name).exists() or (self.out / name).is_symlink():
                    shutil.move(self.out / name, previous / name)
            for name in OUTPUT_NAMES:  # results.json last
                if (staging / name).exists():
                    shutil.move(staging / name, self.out / name)
            shutil.rmtree(previous, ignore_errors=True)
            self._created = False


_held: dict[Path, OutputFolder] = {}


@contextlib.contextmanager
def hold(out: Path, *, defer: bool = False) -> Iterator[OutputFolder]:
    """Lock the output folder for this process (once; nested holds share it).

    Raises OutputBusy when another process holds it. On exit, what was staged and not
    published is removed, and the lock is released.
    """
    key = Path(os.path.abspath(out))
    if key in _held:
        yield _held[key]
        return
    folder = OutputFolder(key, defer=defer)
    with signals.shielded(resume=True):  # known to the finally below before an interrupt lands
        folder._acquire()
        _held[key] = folder
    try:
        yield folder
    finally:
        with signals.shielded():
            del _held[key]
            folder._release()


def write_outputs(
    out: Path, results: dict[str, Any], files: dict[str, str], redactor: Redactor
) -> list[Path]:
    """Write the outputs into out whole; returns their paths.

    Everything is redacted here, before the digests are taken, so that nothing written
    escapes the redactor and every digest matches its file. When the CLI holds the folder
    (defer), they are only staged: it publishes them. When a signal has arrived, nothing is
    published: an interrupted run gives no verdict.
    """
    results = redactor.deep(results)
    files = {name: redactor.text(text) for name, text in files.items()}
    with hold(out) as folder:
        written = folder.stage(results, files)
        if not folder.defer and signals.received() is None:
            folder.publish()
        return written

"""SIGINT, SIGTERM, SIGHUP and a double Ctrl-C at random points of real audits.

25 runs of `persistaudit run`, `persistaudit snapshot CONFIG` and the pytest route. Each
interrupted run must remove everything it created (labelled or only named by its run),
leave no scratch folder and no staging folder, write no verdict (a reused --out keeps the
previous run's files byte for byte), exit with 128 + the signal's number, and say so on its
last line. The points are drawn from a seed, printed in every failure; set
PERSISTAUDIT_INTERRUPT_SEED to replay one.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import docker
import pytest
import yaml

from tests.e2e.conftest import config_variant, leftovers, plain_pytest_args, spawn
from tests.helpers import NOTES_APP, REPO

pytestmark = pytest.mark.docker

SEED = int(os.environ.get("PERSISTAUDIT_INTERRUPT_SEED") or random.randrange(2**32))

# Progress-line markers of `persistaudit run`, in the order they appear, with the range of
# the extra delay after each; "" is the process's start (Python start-up, config, image).
RUN_POINTS = [
    ("", 0.0, 0.8),
    ("resolving image", 0.0, 0.1),
    ("created volume", 0.0, 0.3),
    ("ready in", 0.0, 0.2),
    ("fresh_install.startup", 0.0, 0.1),
    ("restart: writing", 0.0, 0.2),
    ("docker restart", 0.0, 0.4),
    ("recreate: writing", 0.0, 0.2),
    ("docker stop + rm", 0.0, 0.3),
    ("starting a new container", 0.0, 0.3),
    ("recreate.retention", 0.0, 0.1),
    ("removed container", 0.0, 0.05),  # the outputs are being written
    ("verdict PASS", 0.0, 0.0),  # after the verdict line, before the outputs are moved in
]
# Markers after which a run may already be past its point of no return when the signal lands.
LATE_MARKERS = ("removed container", "verdict PASS")
SNAPSHOT_POINTS = [("", 0.3, 0.8), ("created volume", 0.0, 0.2), ("ready in", 0.0, 0.1)]
PYTEST_POINTS = [("created volume", 0.0, 0.3), ("restart: writing", 0.0, 0.3)]
SIGNAL_SETS = [
    (signal.SIGINT,),
    (signal.SIGTERM,),
    (signal.SIGINT, signal.SIGINT),  # Ctrl-C twice: the second lands during clean-up
    (signal.SIGHUP,),
    (signal.SIGTERM, signal.SIGINT),
]
RUNS = 20


@dataclass
class Interruption:
    route: str  # run, snapshot, pytest
    marker: str
    delay: float
    signals: tuple[int, ...]
    gap: float  # between the first and a second signal
    reuse: bool  # --out holds the previous run's outputs
    lines: list[str] = field(default_factory=list)
    code: int | None = None
    sent: list[str] = field(default_factory=list)

    def describe(self) -> str:
        names = "+".join(signal.Signals(s).name for s in self.signals)
        tail = "\n    ".join(self.lines[-12:])
        return (
            f"seed {SEED} (PERSISTAUDIT_INTERRUPT_SEED={SEED} replays it): {self.route} "
            f"{names} {self.delay:.2f} s after {self.marker or 'the start'!r} (gap "
            f"{self.gap:.2f} s, reused --out {self.reuse}), sent {self.sent}, exit {self.code}; "
            f"last lines:\n    {tail}"
        )


def plan() -> list[Interruption]:
    rng = random.Random(SEED)
    points = (RUN_POINTS * 2)[:RUNS]
    rng.shuffle(points)
    todo = []
    for i, (marker, low, high) in enumerate(points):
        todo.append(
            Interruption(
                "run",
                marker,
                rng.uniform(low, high),
                SIGNAL_SETS[i % len(SIGNAL_SETS)],
                rng.uniform(0.02, 0.3),
                reuse=i % 2 == 1,
            )
        )
    for route, points, sigs in (
        ("snapshot", SNAPSHOT_POINTS, SIGNAL_SETS[:3]),
        ("pytest", PYTEST_POINTS, [(signal.SIGTERM,)]),
    ):
        for i, (marker, low, high) in enumerate(points):
            todo.append(
                Interruption(
                    route,
                    marker,
                    rng.uniform(low, high),
                    sigs[i % len(sigs)],
                    rng.uniform(0.02, 0.3),
                    reuse=False,
                )
            )
    return todo


def command(route: str, config: Path, out: Path) -> list[str]:
    if route == "run":
        return ["-m", "persistaudit", "run", str(config), "--out", str(out)]
    if route == "snapshot":
        return ["-m", "persistaudit", "snapshot", str(config), "-o", str(out / "schema.yaml")]
    return plain_pytest_args(config, out)


def interrupt(step: Interruption, args: list[str], tmpdir: Path) -> int:
    """Start the command, send the signals at the step's point; returns the pid."""
    proc = spawn(*args, tmpdir=tmpdir)
    reached = threading.Event()

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            step.lines.append(line.rstrip("\n"))
            if step.marker and step.marker in line:
                reached.set()
        reached.set()  # ended without the marker: the assertions below say so

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        if step.marker:
            reached.wait(timeout=120)
        time.sleep(step.delay)
        for i, sig in enumerate(step.signals):
            if i:
                time.sleep(step.gap)
            if proc.poll() is None:
                proc.send_signal(sig)
                step.sent.append(signal.Signals(sig).name)
        step.code = proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    reader.join(timeout=10)
    return proc.pid


def named_by(engine: docker.DockerClient, prefix: str) -> list[str]:
    """Containers and volumes whose name starts with prefix, labelled or not."""
    return [
        *(c.name for c in engine.containers.list(all=True, filters={"name": prefix})),
        *(v.name for v in engine.volumes.list(filters={"name": prefix})),
    ]


def files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_interrupts_at_random_points_leave_nothing_and_no_verdict(
    engine: docker.DockerClient, tmp_path: Path
) -> None:
    name = f"pa-robust-{SEED:08x}"
    config = config_variant(tmp_path, NOTES_APP / "audit.yaml", "robust")
    doc = yaml.safe_load(config.read_text())
    doc["name"] = name  # its own names: whatever is named by it after a run is a leftover
    doc["build"]["tag"] = "persistaudit/notes-app:audit"  # the image the e2e tests build
    config.write_text(yaml.safe_dump(doc))
    prefix = f"persistaudit-{name}-"
    # One complete run: the previous outputs that reused --out folders start from.
    previous = tmp_path / "previous"
    done = subprocess.run(
        [sys.executable, *command("run", config, previous)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    previous_files = files(previous)

    interrupted = late = 0
    for i, step in enumerate(plan()):
        where = tmp_path / f"{i:02d}"
        out, tmpdir = where / "out", where / "tmp"
        tmpdir.mkdir(parents=True)
        if step.reuse:
            shutil.copytree(previous, out)
        if step.route == "snapshot":
            out.mkdir()
        pid = interrupt(step, command(step.route, config, out), tmpdir)
        why = step.describe()
        output = "\n".join(step.lines)
        assert "Traceback" not in output, why
        assert leftovers(engine, pid) == [], why
        assert named_by(engine, prefix) == [], why
        assert list(tmpdir.iterdir()) == [], f"scratch folders left: {why}"
        assert sorted(p.name for p in where.iterdir()) == sorted(
            ["tmp", *(["out"] if out.exists() else [])]
        ), f"staging folders left beside --out: {why}"
        if step.code == 0 and step.marker in LATE_MARKERS:
            # The signal came after the point of no return, or after the end: the run ended
            # with its verdict and its outputs whole. Possible only at the last markers: the
            # outputs are written within a few milliseconds of the removal, so a signal sent
            # then may land either side of the point of no return (both outcomes are sound).
            assert step.lines[-1].startswith("PASS: "), why
            assert sorted(files(out)) == sorted(previous_files), why
            late += 1
            continue
        if not step.marker and not step.lines and step.code is not None and step.code < 0:
            # Killed by the signal's default action before the interpreter reached
            # persistaudit's handlers (start-up on a loaded machine): nothing was created,
            # as checked above, and no run can act before it starts. Not counted.
            continue
        interrupted += 1
        assert step.sent, f"the run ended before any signal: {why}"
        if step.route == "pytest":
            assert step.code == 128 + step.signals[0], why
            assert "interrupted: cleanup done, no results written" in output, why
        else:
            # Two different signals pending at once are handled in signal-number order.
            last = step.lines[-1]
            assert last.startswith("persistaudit: interrupted by "), why
            named = last.split()[3].rstrip(":")
            assert named in step.sent, why
            if len(set(step.signals)) == 1:
                assert named == signal.Signals(step.signals[0]).name, why
            assert step.code == 128 + signal.Signals[named], why
        if step.reuse:
            assert files(out) == previous_files, f"the previous outputs changed: {why}"
        else:
            assert not out.exists() or list(out.iterdir()) == [], why
    assert interrupted >= 20, f"only {interrupted} runs were interrupted ({late} too late)"

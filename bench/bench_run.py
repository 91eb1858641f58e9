"""Benchmark: `persistaudit run` on notes-app against the bare docker lifecycle it drives.

Prints the wall time of a full audit and, in the same run, the time of the same lifecycle
done with plain docker commands (run and wait ready, restart and wait ready, remove and run
and wait ready), and their ratio. The aim is 1.5x or less.

Usage: python bench/bench_run.py [--rounds N]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CONFIG = REPO / "fixtures" / "targets" / "notes-app" / "audit.yaml"
IMAGE = "persistaudit/notes-app:audit"
LABEL = "io.persistaudit.managed=true"


def docker(*args: str) -> str:
    return subprocess.run(
        ["docker", *args], check=True, capture_output=True, text=True
    ).stdout.strip()


def wait_ready(name: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            port = docker("port", name, "8080/tcp").splitlines()[0].rsplit(":", 1)[1]
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1) as r:
                if r.status == 200:
                    return
        except (subprocess.CalledProcessError, OSError, IndexError):
            pass
        time.sleep(0.1)
    raise SystemExit(f"{name} was not ready within {timeout} s")


def bare_lifecycle() -> float:
    volume = "persistaudit-bench-vol"
    run = ["run", "-d", "--label", LABEL, "-v", f"{volume}:/data", "-p", "127.0.0.1::8080"]
    started = time.monotonic()
    try:
        docker("volume", "create", "--label", LABEL, volume)
        docker(*run, "--name", "pa-bench-1", IMAGE)
        wait_ready("pa-bench-1")
        docker("restart", "pa-bench-1")
        wait_ready("pa-bench-1")
        docker("rm", "-f", "pa-bench-1")
        docker(*run, "--name", "pa-bench-2", IMAGE)
        wait_ready("pa-bench-2")
        return time.monotonic() - started
    finally:
        subprocess.run(["docker", "rm", "-f", "pa-bench-1", "pa-bench-2"], capture_output=True)
        subprocess.run(["docker", "volume", "rm", "-f", volume], capture_output=True)


def audit() -> float:
    with tempfile.TemporaryDirectory() as out:
        started = time.monotonic()
        proc = subprocess.run(
            [sys.executable, "-m", "persistaudit", "run", str(CONFIG), "--out", out],
            capture_output=True,
            text=True,
            check=False,
        )
        elapsed = time.monotonic() - started
    if proc.returncode != 0:
        raise SystemExit(f"the audit did not pass (exit {proc.returncode}):\n{proc.stderr}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    rounds = parser.parse_args().rounds
    audit()  # warm-up: builds the image (cached) so neither side pays for it
    audits, bares = [], []
    for _ in range(rounds):
        audits.append(audit())
        bares.append(bare_lifecycle())
    a, b = statistics.median(audits), statistics.median(bares)
    print(f"rounds:                          {rounds}")
    print(f"persistaudit run (median):       {a:6.2f} s   {' '.join(f'{x:.2f}' for x in audits)}")
    print(f"bare docker lifecycle (median):  {b:6.2f} s   {' '.join(f'{x:.2f}' for x in bares)}")
    print(f"ratio:                           {a / b:6.2f}x  (aim: 1.5x or less)")


if __name__ == "__main__":
    main()

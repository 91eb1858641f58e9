"""Benchmark: the wall time of each light command, from start to exit.

A light command (`--help`, `diff` against a database file and against a manifest,
`snapshot FILE`, `report`, `verify`) does a few milliseconds of work; what it costs is
starting the interpreter and importing. Each runs as a fresh process of the installed
`persistaudit` script, round-robin with the baseline `python -c pass` so that both see the
same load. Prints the median and the fastest run, the ratio of the median to the
baseline's, and the target: 0.2 s (issue 13). Then, for reference, what importing the
heaviest library each light command needs costs on its own (same baseline).

Usage: python bench/bench_cli.py [--rounds N]
"""

from __future__ import annotations

import argparse
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bytecode import compile_bytecode

GOLDEN = Path(__file__).resolve().parent.parent / "tests" / "golden" / "pass.results.json"
TARGET_S = 0.2
BASELINE = "python -c pass"


def persistaudit() -> list[str]:
    """The console script next to this interpreter, as a user runs it (else -m)."""
    script = Path(sys.executable).parent / "persistaudit"
    return [str(script)] if script.exists() else [sys.executable, "-m", "persistaudit"]


def prepare(folder: Path) -> None:
    """A small database, its manifest, a results.json and a signed report folder."""
    conn = sqlite3.connect(folder / "small.db")
    conn.executescript(
        "CREATE TABLE owners (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);"
        "CREATE TABLE notes (id INTEGER PRIMARY KEY, owner INTEGER REFERENCES owners(id),"
        " title TEXT NOT NULL, body TEXT DEFAULT '');"
        "CREATE INDEX ix_notes_owner ON notes (owner);"
    )
    conn.close()
    (folder / "signed").mkdir()
    shutil.copy(GOLDEN, folder / "signed" / "results.json")
    for args in (
        ["snapshot", "small.db", "-o", "small.yaml"],
        ["report", "signed/results.json", "-o", "signed/report.md"],
        ["keygen", "key"],
        ["sign", "signed", "--key", "key", "--auditor", "A", "--role", "R"],
    ):
        subprocess.run([*persistaudit(), *args], cwd=folder, check=True, capture_output=True)


def commands() -> dict[str, list[str]]:
    cli = persistaudit()
    return {
        BASELINE: [sys.executable, "-c", "pass"],
        "--help": [*cli, "--help"],
        "diff small.yaml small.db": [*cli, "diff", "small.yaml", "small.db"],
        "diff small.yaml small.yaml": [*cli, "diff", "small.yaml", "small.yaml"],
        "snapshot small.db": [*cli, "snapshot", "small.db"],
        "report results.json -o r.md": [*cli, "report", "signed/results.json", "-o", "r.md"],
        "verify signed --pubkey key.pub": [*cli, "verify", "signed", "--pubkey", "key.pub"],
    }


def imports() -> dict[str, list[str]]:
    """The floor under the light commands: each library imported alone."""
    python = [sys.executable, "-c"]
    return {
        BASELINE: [*python, "pass"],
        "import click": [*python, "import click"],
        "import yaml (diff, snapshot)": [*python, "import yaml"],
        "import msgspec (diff, snapshot)": [*python, "import msgspec"],
        "import pydantic (run only)": [*python, "import pydantic; pydantic.BaseModel"],
        "import jinja2 (report)": [*python, "import jinja2"],
        "import cryptography (verify)": [
            *python,
            "from cryptography.hazmat.primitives.asymmetric import ed25519",
        ],
    }


def timed(runs: dict[str, list[str]], rounds: int, folder: Path) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(rounds):
        for name, argv in runs.items():
            started = time.perf_counter()
            done = subprocess.run(argv, cwd=folder, capture_output=True, check=False)
            times[name].append(time.perf_counter() - started)
            if done.returncode != 0:
                sys.exit(f"{name}: exit code {done.returncode}: {done.stderr.decode()[-300:]}")
    return times


def show(title: str, times: dict[str, list[float]], target: bool) -> None:
    base = statistics.median(times[BASELINE])
    print(f"\n{title:<34} {'median':>8} {'fastest':>8} {'x baseline':>11}  target")
    for name, runs in times.items():
        median = statistics.median(runs)
        verdict = ""
        if target and name != BASELINE:
            verdict = f"<= {TARGET_S} s: {'met' if median <= TARGET_S else 'NOT met'}"
        ratio = "" if name == BASELINE else f"{median / base:10.1f}x"
        print(f"{name:<34} {median:7.3f}s {min(runs):7.3f}s {ratio:>11}  {verdict}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    compile_bytecode(Path(__file__).resolve().parent.parent)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        prepare(folder)
        print(f"medians of {args.rounds} rounds; baseline: {BASELINE} ({sys.executable})")
        show("light command", timed(commands(), args.rounds, folder), target=True)
        show("import alone (for reference)", timed(imports(), args.rounds, folder), target=False)


if __name__ == "__main__":
    main()

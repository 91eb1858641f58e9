"""Benchmark: `persistaudit run` of notes-app against the bare docker lifecycle it drives.

Two audits, each beside a bare lifecycle that does the same docker steps with plain docker
commands, in the same run and in alternating rounds (absolute times are noisy on a shared
machine; the ratio is the figure):

- core: fresh install, restart and re-create only (the demo config with graceful_stop,
  idempotent_init and backup switched off). Bare: volume create; run + ready; restart +
  ready; stop + rm + run + ready (the audit's re-create stops the service gracefully before
  it removes the container, so the bare one does too).
- full: the bundled demo config (fixtures/targets/notes-app/audit.yaml) with its extra
  suites. Bare, in addition: stop + start + ready (graceful stop); restart + ready twice (the
  idempotent starts); pause + copy the database out + unpause, then a second volume and a
  created container seeded with the copy, start + ready, removed (the backup's restore).

"ready" is HTTP GET /health answering 200, polled every 50 ms (the audit's default
interval); the published port is looked up once per start. Neither side's image build is
timed (a warm-up audit builds it first), nor the bare side's clean-up. persistaudit's
modules are compiled to bytecode first, as an installed wheel's are. Target: the audit takes
at most 1.25x its bare lifecycle.

--concurrency N writes the canary records N at a time (canary.concurrency) in both audits;
the bundled config writes them one after another.

--against CHECKOUT also times the audits of another checkout's code (its src/ first on
PYTHONPATH, e.g. a `git worktree` of main) in the same rounds: before and after a change,
under the same load.

Usage: python bench/bench_run.py [--rounds N] [--only core|full] [--concurrency N]
       [--against CHECKOUT]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from bytecode import compile_bytecode

REPO = Path(__file__).resolve().parent.parent
DEMO = REPO / "fixtures" / "targets" / "notes-app" / "audit.yaml"
IMAGE = "persistaudit/notes-app:audit"
LABEL = "io.persistaudit.managed=true"
TARGET = 1.25
POLL_S = 0.05
OFF = {"enabled": False}


def docker(*args: str) -> str:
    return subprocess.run(
        ["docker", *args], check=True, capture_output=True, text=True
    ).stdout.strip()


def wait_ready(name: str, timeout: float = 60) -> None:
    """Until GET /health answers 200 on the container's published port 8080."""
    port = docker("port", name, "8080/tcp").splitlines()[0].rsplit(":", 1)[1]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(POLL_S)
    raise SystemExit(f"{name} was not ready within {timeout} s")


def run_args(volume: str) -> list[str]:
    return ["-d", "--label", LABEL, "-v", f"{volume}:/data", "-p", "127.0.0.1::8080"]


def bare_core(tag: str) -> Callable[[], None]:
    """The core lifecycle; returns what the full one does after it (same container)."""
    volume, first, second = f"pa-bench-{tag}", f"pa-bench-{tag}-1", f"pa-bench-{tag}-2"
    docker("volume", "create", "--label", LABEL, volume)
    docker("run", *run_args(volume), "--name", first, IMAGE)
    wait_ready(first)
    docker("restart", first)
    wait_ready(first)
    docker("stop", first)
    docker("rm", first)
    docker("run", *run_args(volume), "--name", second, IMAGE)
    wait_ready(second)

    def extra() -> None:
        docker("stop", "--time", "10", second)  # graceful stop
        docker("start", second)
        wait_ready(second)
        for _ in range(2):  # idempotent starts
            docker("restart", second)
            wait_ready(second)
        with tempfile.TemporaryDirectory() as scratch:  # backup, then its restore
            docker("pause", second)
            try:
                docker("cp", f"{second}:/data/notes.db", scratch)
            finally:
                docker("unpause", second)
            restored, box = f"{volume}-restore", f"{second}-restore"
            docker("volume", "create", "--label", LABEL, restored)
            docker("create", *run_args(restored)[1:], "--name", box, IMAGE)
            docker("cp", f"{scratch}/notes.db", f"{box}:/data/notes.db")
            docker("start", box)
            wait_ready(box)
            docker("rm", "-f", box)
            docker("volume", "rm", restored)

    return extra


def bare(full: bool) -> float:
    tag = "full" if full else "core"
    started = time.monotonic()
    try:
        extra = bare_core(tag)
        if full:
            extra()
        return time.monotonic() - started
    finally:
        names = [f"pa-bench-{tag}-1", f"pa-bench-{tag}-2", f"pa-bench-{tag}-2-restore"]
        subprocess.run(["docker", "rm", "-f", *names], capture_output=True)
        volumes = [f"pa-bench-{tag}", f"pa-bench-{tag}-restore"]
        subprocess.run(["docker", "volume", "rm", "-f", *volumes], capture_output=True)


def config_variant(folder: Path, name: str, change: Callable[[dict[str, Any]], None]) -> Path:
    """The demo config, changed, written to folder (its relative paths made absolute)."""
    data = yaml.safe_load(DEMO.read_text(encoding="utf-8"))
    data["build"]["context"] = str((DEMO.parent / data["build"]["context"]).resolve())
    data["expect"]["manifest"] = str((DEMO.parent / data["expect"]["manifest"]).resolve())
    change(data)
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def core_only(data: dict[str, Any]) -> None:
    data["suites"] = {"graceful_stop": OFF, "idempotent_init": OFF, "backup": OFF}


def concurrent(
    n: int, change: Callable[[dict[str, Any]], None]
) -> Callable[[dict[str, Any]], None]:
    def changed(data: dict[str, Any]) -> None:
        change(data)
        if n > 1:
            data["canary"]["concurrency"] = n

    return changed


def audit(config: Path, checkout: Path | None = None) -> float:
    """Wall time of `persistaudit run CONFIG` (with checkout's code); exits when the audit
    does not pass."""
    env = None
    if checkout is not None:
        env = {**os.environ, "PYTHONPATH": str(checkout.resolve() / "src")}
    with tempfile.TemporaryDirectory() as out:
        started = time.monotonic()
        proc = subprocess.run(
            [sys.executable, "-m", "persistaudit", "run", str(config), "--out", out],
            capture_output=True,
            text=True,
            check=False,
            env=env,
        )
        elapsed = time.monotonic() - started
    if proc.returncode != 0:
        raise SystemExit(f"the audit did not pass (exit {proc.returncode}):\n{proc.stderr}")
    return elapsed


def show(label: str, times: list[float]) -> float:
    median = statistics.median(times)
    print(f"  {label:<30} {median:6.2f} s   ({' '.join(f'{x:.2f}' for x in times)})")
    return median


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--only", choices=("core", "full"))
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--against", type=Path, metavar="CHECKOUT")
    args = parser.parse_args()
    kinds = [args.only] if args.only else ["core", "full"]
    n = args.concurrency
    compile_bytecode(REPO, *([args.against] if args.against else []))
    with tempfile.TemporaryDirectory() as folder:
        configs = {
            "core": config_variant(Path(folder), "core", concurrent(n, core_only)),
            "full": config_variant(Path(folder), "full", concurrent(n, lambda _data: None)),
        }
        audit(configs["core"])  # warm-up: builds the image (cached) so neither side pays for it
        sides = ("a", "b", "c") if args.against else ("a", "b")
        times: dict[str, list[float]] = {f"{k}-{s}": [] for k in kinds for s in sides}
        for _ in range(args.rounds):
            for kind in kinds:
                times[f"{kind}-a"].append(audit(configs[kind]))
                times[f"{kind}-b"].append(bare(kind == "full"))
                if args.against:
                    times[f"{kind}-c"].append(audit(configs[kind], args.against))
    print(f"rounds: {args.rounds} (medians; each round runs every side once, alternating)")
    print(f"canary records written {n} at a time")
    for kind in kinds:
        what = "core suites" if kind == "core" else "full demo audit, extra suites"
        print(f"{kind} ({what}):")
        a = show("persistaudit run", times[f"{kind}-a"])
        b = show("bare docker lifecycle", times[f"{kind}-b"])
        verdict = "met" if a / b <= TARGET else "not met"
        print(f"  {'ratio':<30} {a / b:6.2f}x  (target: {TARGET}x or less: {verdict})")
        if args.against:
            c = show(f"run, {args.against.name}", times[f"{kind}-c"])
            print(f"  {'ratio, ' + args.against.name:<30} {c / b:6.2f}x")


if __name__ == "__main__":
    main()

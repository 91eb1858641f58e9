"""Benchmark: how the audit's time grows with the number of canary records.

Runs the core audit of notes-app (fresh install, restart, re-create; bench_run.py's core
config) with 20 records and then with each size given (default 100, 1,000 and 10,000), in
one run. The part that grows is the audit's time less the 20-record one; its growth exponent
between two sizes is log(grown_b / grown_a) / log(b / a): 1 is linear, 2 quadratic. The
target is linear or better (an exponent of about 1 or less).

Beside it, in the same run, the bare canary traffic: the same requests (for each of two
cycles, N writes, then N reads by id after a restart) sent by a plain client to a bare
container, timing only the requests. When both grow alike, what grows is the service's.

The records are read back by id (GET /notes/{id}, the id captured from the write): the demo's
read by title is a full scan in notes-app itself, so its reads grow quadratically in the
service, whatever the audit does. Records per cycle are written (and read back)
`--concurrency` at a time (canary.concurrency).

Usage: python bench/bench_canaries.py [--sizes 100,1000,10000] [--concurrency N]
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import subprocess
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from bench_run import IMAGE, LABEL, audit, config_variant, core_only, docker, run_args, wait_ready

BASE_RECORDS = 20


def by_id(records: int, concurrency: int) -> Any:
    def change(data: dict[str, Any]) -> None:
        core_only(data)
        canary = data["canary"]
        canary["records"] = records
        canary["concurrency"] = concurrency
        canary["write"][0]["capture"] = {"id": {"json": "id", "secret": False}}
        canary["read"] = [
            {
                "method": "GET",
                "path": "/notes/{capture.id}",
                "port": 8080,
                "expect_json": {"title": "{marker}", "id": "{capture.id}"},
            }
        ]

    return change


def published(name: str) -> str:
    """The container's port 8080 as a URL."""
    port = docker("port", name, "8080/tcp").splitlines()[0].rsplit(":", 1)[1]
    return f"http://127.0.0.1:{port}"


def post_note(base: str, title: str) -> int:
    body = json.dumps({"title": title, "body": "canary"}).encode()
    request = urllib.request.Request(base + "/notes", body, {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as answer:
        return int(json.loads(answer.read())["id"])


def get_note(base: str, note: int) -> None:
    with urllib.request.urlopen(f"{base}/notes/{note}", timeout=30) as answer:
        answer.read()


def bare_traffic(records: int, concurrency: int) -> float:
    """Seconds the canary requests of two cycles take from a plain client (the restart
    between writes and reads is not timed)."""
    name = volume = "pa-bench-canaries"
    try:
        docker("volume", "create", "--label", LABEL, volume)
        docker("run", *run_args(volume), "--name", name, IMAGE)
        wait_ready(name)
        spent = 0.0
        with ThreadPoolExecutor(concurrency) as pool:
            for cycle in range(2):
                base = published(name)
                titles = [f"pa-bench-{cycle}-{i:06d}" for i in range(records)]
                started = time.monotonic()
                ids = list(pool.map(functools.partial(post_note, base), titles))
                spent += time.monotonic() - started
                docker("restart", name)
                wait_ready(name)
                base = published(name)  # a new port with every start
                started = time.monotonic()
                list(pool.map(functools.partial(get_note, base), ids))
                spent += time.monotonic() - started
        return spent
    finally:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True)
        subprocess.run(["docker", "volume", "rm", "-f", volume], capture_output=True)


def exponent(a: tuple[int, float], b: tuple[int, float]) -> float:
    return math.log(max(b[1], 1e-3) / max(a[1], 1e-3)) / math.log(b[0] / a[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100,1000,10000")
    parser.add_argument("--concurrency", type=int, default=1)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    with tempfile.TemporaryDirectory() as folder:

        def timed(records: int) -> float:
            change = by_id(records, args.concurrency)
            return audit(config_variant(Path(folder), f"records-{records}", change))

        timed(BASE_RECORDS)  # warm-up: builds the image (cached)
        base = timed(BASE_RECORDS)
        times = {n: timed(n) for n in sizes}
        bare = {n: bare_traffic(n, args.concurrency) for n in sizes}
    print(f"canary records, {args.concurrency} at a time (core audit of notes-app)")
    print(f"  {BASE_RECORDS:>6} records: audit {base:7.2f} s (the fixed part)")
    previous: tuple[int, float, float] | None = None
    for n in sizes:
        grown = times[n] - base
        line = (
            f"  {n:>6} records: audit {times[n]:7.2f} s, grown {grown:7.2f} s "
            f"({1000 * grown / n:5.1f} ms/record); bare traffic {bare[n]:7.2f} s "
            f"({1000 * bare[n] / n:5.1f} ms/record)"
        )
        if previous is not None:
            k = exponent((previous[0], previous[1]), (n, grown))
            k_bare = exponent((previous[0], previous[2]), (n, bare[n]))
            verdict = "linear or better" if k <= 1.2 else "worse than linear"
            line += f"\n{'':18}growth exponent from {previous[0]}: audit {k:4.2f} ({verdict}), "
            line += f"bare traffic {k_bare:4.2f}"
        print(line)
        previous = (n, grown, bare[n])


if __name__ == "__main__":
    main()

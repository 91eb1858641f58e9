"""Benchmark: how the audit's time grows with the number of canary records.

Runs the core audit of notes-app (fresh install, restart, re-create; bench_run.py's core
config) with 20 records and then with each size given (default 100, 1,000 and 10,000), in
one run. The part that grows is the audit's time less the 20-record one; its growth exponent
between two sizes is log(grown_b / grown_a) / log(b / a): 1 is linear, 2 quadratic. The
target is linear or better (an exponent of about 1 or less).

The records are read back by id (GET /notes/{id}, the id captured from the write): the demo's
read by title is a full scan in notes-app itself, so its reads grow quadratically in the
service, whatever the audit does. Records per cycle are written (and read back)
`--concurrency` at a time (canary.concurrency).

Usage: python bench/bench_canaries.py [--sizes 100,1000,10000] [--concurrency N]
"""

from __future__ import annotations

import argparse
import math
import tempfile
from pathlib import Path
from typing import Any

from bench_run import audit, config_variant, core_only

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
    print(f"canary records, {args.concurrency} at a time (core audit of notes-app)")
    print(f"  {BASE_RECORDS:>6} records: {base:7.2f} s  (the fixed part)")
    previous: tuple[int, float] | None = None
    for n in sizes:
        grown = max(times[n] - base, 1e-3)
        line = f"  {n:>6} records: {times[n]:7.2f} s  {1000 * grown / n:6.2f} ms per record"
        if previous is not None:
            exponent = math.log(grown / previous[1]) / math.log(n / previous[0])
            verdict = "linear or better" if exponent <= 1.2 else "worse than linear"
            line += f"  growth exponent from {previous[0]}: {exponent:4.2f} ({verdict})"
        print(line)
        previous = (n, grown)


if __name__ == "__main__":
    main()

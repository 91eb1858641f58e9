"""Benchmark: `persistaudit report --format html` on very large results files.

A target can put anything in its logs, and the report quotes them. Each case writes a
results.json of about 50 MB in one way (one huge excerpt, a huge table, a huge summary
full of Markdown punctuation, many checks) and prints the time, the peak memory of the
render and the size of the page. Aim: each case under 10 s and 1 GB (the file is read
whole, so memory grows with the file, bounded by the 64 MiB limit on results.json; the page
is bounded by the report's own limits, see report.py).

Usage: python bench/bench_report.py [--megabytes N]
"""

from __future__ import annotations

import argparse
import copy
import json
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from persistaudit.cli import main

GOLDEN = Path(__file__).resolve().parent.parent / "tests" / "golden" / "fail.results.json"


def cases(size: int) -> dict[str, dict[str, Any]]:
    base = json.loads(GOLDEN.read_text())
    out = {}
    doc = copy.deepcopy(base)
    doc["checks"][1]["evidence"][0]["content"] = "log line of a chatty service\n" * (size // 29)
    out["one huge excerpt"] = doc
    doc = copy.deepcopy(base)
    rows = [[f"table_{i}", "missing", "x", ""] for i in range(size // 40)]
    evidence = {"title": "t", "content": "", "kind": "table", "columns": list("abcd")}
    doc["checks"][1]["evidence"].append({**evidence, "rows": rows})
    out["one huge table"] = doc
    doc = copy.deepcopy(base)
    doc["checks"][1]["summary"] = "*[_`" * (size // 4)
    out["one huge Markdown summary"] = doc
    doc = copy.deepcopy(base)
    check = copy.deepcopy(base["checks"][1])
    check["summary"] = "*[" * (size // 10_000)
    check["evidence"] = [
        {"title": "*[" * 100, "content": "x" * (size // 50_000), "kind": "log"}
    ] * 24
    doc["checks"] = [check] * 1000  # the most a results.json may hold
    out["1,000 checks of slow Markdown"] = doc
    return out


def main_() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megabytes", type=int, default=50)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for label, doc in cases(args.megabytes * 1_000_000).items():
            source = Path(tmp) / "results.json"
            source.write_text(json.dumps(doc))
            target = Path(tmp) / "report.html"
            args = ["report", str(source), "-o", str(target), "--format", "html"]
            started = time.perf_counter()
            result = CliRunner().invoke(main, args)
            elapsed = time.perf_counter() - started
            assert result.exit_code == 0, result.output
            tracemalloc.start()  # a second run for the peak: tracemalloc slows Python down
            CliRunner().invoke(main, args)
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
            print(
                f"{label:<30} {source.stat().st_size / 1e6:5.1f} MB results -> "
                f"{target.stat().st_size / 1e6:5.2f} MB page in {elapsed:5.1f} s, "
                f"peak {peak / 1e6:4.0f} MB"
            )


if __name__ == "__main__":
    main_()

"""Benchmark: diff two manifests of 5,000 tables with 20 columns each.

Prints the time and peak memory of the diff itself, and separately of building the two
manifests from their data and of loading one from YAML. Aim: 1 s and 200 MB or less.
Then the snapshot of a hostile schema whose column type is 200,000 `[` (44 s when the
tokenizer was quadratic). Aim: 1 s or less.

Usage: python bench/bench_diff.py [--tables N] [--columns N] [--brackets N]
"""

from __future__ import annotations

import argparse
import random
import sqlite3
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

from persistaudit.diff import diff
from persistaudit.manifest import Manifest, dump_manifest, load_manifest
from persistaudit.schema import read_schema


def manifest_data(tables: int, columns: int, seed: int) -> dict[str, Any]:
    rng = random.Random(seed)
    data: dict[str, Any] = {"manifest_version": 1, "tables": {}, "indexes": {}}
    for t in range(tables):
        cols = [{"name": "id", "type": "INTEGER", "pk": 1}]
        cols += [
            {
                "name": f"c{c}",
                "type": rng.choice(["TEXT", "INTEGER", "REAL"]),
                "not_null": c % 3 == 0,
            }
            for c in range(1, columns)
        ]
        table: dict[str, Any] = {"columns": cols, "primary_key": ["id"]}
        if t:
            table["foreign_keys"] = [{"columns": ["c1"], "table": f"t{t - 1}", "to": ["id"]}]
        data["tables"][f"t{t}"] = table
        data["indexes"][f"ix_t{t}"] = {"table": f"t{t}", "columns": ["c1", "c2"]}
    return data


def mutate(data: dict[str, Any], seed: int) -> dict[str, Any]:
    """About 1% of the tables drift: a type, a nullability, a dropped column."""
    rng = random.Random(seed)
    for name in rng.sample(sorted(data["tables"]), len(data["tables"]) // 100):
        cols = data["tables"][name]["columns"]
        cols[1] = {**cols[1], "type": "BLOB"}
        cols[2] = {**cols[2], "not_null": not cols[2].get("not_null", False)}
        del cols[-1]
    return data


def measure(label: str, func: Any) -> Any:
    """Time a run on its own (tracemalloc slows Python), then a second run for peak memory."""
    started = time.perf_counter()
    result = func()
    elapsed = time.perf_counter() - started
    tracemalloc.start()
    func()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    print(f"{label:<38} {elapsed:7.3f} s   peak {peak / 2**20:7.1f} MiB")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tables", type=int, default=5000)
    parser.add_argument("--columns", type=int, default=20)
    parser.add_argument("--brackets", type=int, default=200_000)
    args = parser.parse_args()
    print(f"{args.tables} tables x {args.columns} columns")
    a_data = manifest_data(args.tables, args.columns, 1)
    b_data = mutate(manifest_data(args.tables, args.columns, 1), 2)
    a = measure("build manifest A (validate)", lambda: Manifest.model_validate(a_data))
    b = measure("build manifest B (validate)", lambda: Manifest.model_validate(b_data))
    found = measure("diff A x B", lambda: diff(a, b))
    print(f"{'differences found':<38} {len(found)}")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "a.yaml"
        measure("dump manifest A to YAML", lambda: path.write_text(dump_manifest(a)))
        measure("load manifest A from YAML", lambda: load_manifest(path))
    conn = sqlite3.connect(":memory:")
    conn.execute(f"CREATE TABLE t (a {'[' * args.brackets}])")  # declares the type [[[...
    measure(f"snapshot: a type of {args.brackets:,} '['", lambda: read_schema(conn))


if __name__ == "__main__":
    main()

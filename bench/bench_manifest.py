"""Benchmark: loading, dumping and diffing a manifest of 5,000 tables x 20 columns.

Generates, in a temporary folder, a manifest (and one with about 1% of its tables drifted)
and a SQLite database with exactly that schema. Prints, as medians of a few rounds (wall
time, and the process's CPU time, which a busy machine disturbs less):
- the baseline: the diff itself (two manifests already in memory, diff.py);
- load_manifest of the YAML file and dump_manifest to YAML, each with its ratio to the
  baseline and the target of issue 13 (0.5 s each), and their peak memory (tracemalloc);
- for reference: the snapshot of the database (schema.from_file) and `persistaudit diff
  MANIFEST DATABASE` in-process (load + snapshot + diff);
- the snapshot of a hostile schema whose column type is 200,000 `[` (44 s when the
  tokenizer was quadratic; aim 1 s or less).

Usage: python bench/bench_manifest.py [--tables N] [--columns N] [--rounds N] [--brackets N]
"""

from __future__ import annotations

import argparse
import random
import sqlite3
import statistics
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

from persistaudit import schema
from persistaudit.diff import diff
from persistaudit.manifest import dump_manifest, from_data, load_manifest
from persistaudit.schema import read_schema

TARGET_S = 0.5
TYPES = ["TEXT", "INTEGER", "REAL"]


def manifest_data(tables: int, columns: int, seed: int) -> dict[str, Any]:
    """Tables t0..tN: an INTEGER primary key, typed columns, a foreign key to the table
    before, and an index on (c1, c2)."""
    rng = random.Random(seed)
    data: dict[str, Any] = {"manifest_version": 1, "tables": {}, "indexes": {}}
    for t in range(tables):
        cols = [{"name": "id", "type": "INTEGER", "pk": 1}]
        cols += [
            {"name": f"c{c}", "type": rng.choice(TYPES), "not_null": c % 3 == 0}
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


def database(data: dict[str, Any], path: Path) -> None:
    """A SQLite file whose schema is the manifest's."""
    conn = sqlite3.connect(path)
    for name, table in data["tables"].items():
        parts = []
        for col in table["columns"]:
            spec = f"{col['name']} {col['type']}"
            spec += " PRIMARY KEY" if col.get("pk") else ""
            spec += " NOT NULL" if col.get("not_null") else ""
            parts.append(spec)
        for fk in table.get("foreign_keys", []):
            parts.append(f"FOREIGN KEY ({fk['columns'][0]}) REFERENCES {fk['table']}(id)")
        conn.execute(f"CREATE TABLE {name} ({', '.join(parts)})")
    for name, index in data["indexes"].items():
        conn.execute(f"CREATE INDEX {name} ON {index['table']} ({', '.join(index['columns'])})")
    conn.commit()
    conn.close()


def timed(func: Callable[[], Any], rounds: int) -> tuple[float, float, Any]:
    """Median wall and CPU seconds of a call, and its result."""
    walls, cpus = [], []
    result = None
    for _ in range(rounds):
        wall, cpu = time.perf_counter(), time.process_time()
        result = func()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return statistics.median(walls), statistics.median(cpus), result


def peak(func: Callable[[], Any]) -> float:
    """Peak traced memory of one more call, in MiB (tracemalloc slows it: not timed)."""
    tracemalloc.start()
    func()
    _, top = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return top / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tables", type=int, default=5000)
    parser.add_argument("--columns", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--brackets", type=int, default=200_000)
    args = parser.parse_args()
    a_data = manifest_data(args.tables, args.columns, 1)
    a = from_data(a_data)
    b = from_data(mutate(manifest_data(args.tables, args.columns, 1), 2))
    rounds = args.rounds
    with tempfile.TemporaryDirectory() as tmp:
        yaml_path, db_path = Path(tmp) / "a.yaml", Path(tmp) / "a.db"
        yaml_path.write_text(dump_manifest(a), encoding="utf-8")
        database(a_data, db_path)
        size = yaml_path.stat().st_size / 2**20
        print(
            f"{args.tables} tables x {args.columns} columns ({size:.1f} MiB of YAML); "
            f"medians of {rounds} rounds"
        )
        base_wall, base_cpu, found = timed(lambda: diff(a, b), rounds)
        print(f"\n{'':<40} {'wall':>8} {'cpu':>8} {'x diff':>7}  target")
        print(
            f"{'baseline: the diff itself (A x B)':<40} {base_wall:7.3f}s {base_cpu:7.3f}s"
            f"{'':>8}  ({len(found)} differences)"
        )
        for label, func in (
            ("load_manifest (YAML -> Manifest)", lambda: load_manifest(yaml_path)),
            ("dump_manifest (Manifest -> YAML)", lambda: dump_manifest(a)),
        ):
            wall, cpu, _ = timed(func, rounds)
            met = "met" if wall <= TARGET_S else "NOT met"
            print(
                f"{label:<40} {wall:7.3f}s {cpu:7.3f}s {wall / base_wall:6.1f}x  "
                f"<= {TARGET_S} s: {met}; peak {peak(func):.0f} MiB"
            )
        for label, func in (
            ("snapshot of the database (from_file)", lambda: schema.from_file(db_path)),
            (
                "diff MANIFEST DATABASE (in-process)",
                lambda: diff(load_manifest(yaml_path), schema.from_file(db_path)),
            ),
        ):
            wall, cpu, result = timed(func, rounds)
            extra = f"  ({len(result)} differences)" if isinstance(result, list) else ""
            print(f"{label:<40} {wall:7.3f}s {cpu:7.3f}s {wall / base_wall:6.1f}x{extra}")
    conn = sqlite3.connect(":memory:")
    conn.execute(f"CREATE TABLE t (a {'[' * args.brackets}])")  # declares the type [[[...
    wall, cpu, _ = timed(lambda: read_schema(conn), 1)
    print(
        f"\nsnapshot: a type of {args.brackets:,} '['      {wall:7.3f}s {cpu:7.3f}s"
        "          aim <= 1 s"
    )


if __name__ == "__main__":
    main()

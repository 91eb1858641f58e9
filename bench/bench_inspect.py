"""Benchmark: copy-out plus inspection of generated databases (10 MB, 100 MB, 1 GiB).

Each database (a few tables of blobs, text and small rows, WAL mode) is put on a labelled
volume of a running container, then copied out and inspected in a child process through
persistaudit's own code path: take_snapshots (paused, the Docker API's archive) and
inspect_database + schema.from_copy, as TargetAudit.snapshot does. Printed per size: seconds,
MB/s, the child's peak RSS (VmHWM), the baseline `sqlite3 db .dump | sha256sum` on the same
file, and the ratio against the targets (>= 500 MB/s, <= 150 MB RSS). The last lines show how
time per MB grows with size (linear or better means it does not rise).

A second snapshot of the unchanged database is timed too: the copy's fingerprint matches the
first one's, so its facts are reused (inspect.inspect_snapshot) rather than read again. A
third follows a one-row insert into one table (tags), made in the container: the other
tables' pages are unchanged, so their row digests are taken from the first (btree_pages).

Row digests are read when a check asks for them (inspect.TableRows), not by the inspection.
So the figures go on with what an audit does next, retention between the first copy and the
one-row one (rowdiff compares the changed table in SQL, no row digest is read), and, for
reference, the time it takes to read every table's row digests of the first copy, which the
inspection did before.

Usage: python bench/bench_inspect.py [--sizes 10,100] [--big] [--rounds N]
  --big adds the 1 GiB case (about a minute to generate, 2 GiB of disk while it runs).
Everything it creates is labelled io.persistaudit.managed=true with its own run id and
removed at the end, also on Ctrl-C.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import resource
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import docker

from persistaudit import engine
from persistaudit.sqlite_guard import Limits

IMAGE = "persistaudit/base-python:bookworm"
TARGET = "bench-inspect"
DB_IN_CONTAINER = "/data/app.db"
MB = 1024**2
TARGET_MBPS = 500.0
TARGET_RSS_MB = 150.0
# A shared machine can be slow: the deadline of one table's digest is not what is measured.
LIMITS = Limits(query_timeout=3600)
ONE_ROW = "c.execute(\"INSERT INTO tags VALUES (1, 'bench')\"); c.commit()"


def generate(path: Path, size: int) -> None:
    """A WAL database of about size bytes: half blobs, a third text, the rest small rows."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = OFF")
        conn.executescript(
            """
            CREATE TABLE files(id INTEGER PRIMARY KEY, name TEXT NOT NULL, data BLOB);
            CREATE TABLE notes(id INTEGER PRIMARY KEY, title TEXT, body TEXT, created INTEGER);
            CREATE INDEX notes_created ON notes(created);
            CREATE TABLE events(id INTEGER PRIMARY KEY, ts REAL, kind TEXT, payload TEXT,
                                note_id INTEGER REFERENCES notes(id));
            CREATE TABLE tags(note_id INTEGER, tag TEXT);
            """
        )
        rows = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < {n}) "
        conn.execute("BEGIN")
        conn.execute(
            rows.format(n=max(1, size // 2 // 32768))
            + "INSERT INTO files(name, data) SELECT 'file-' || x, randomblob(32768) FROM c"
        )
        conn.execute(
            rows.format(n=max(1, size * 30 // 100 // 1100))
            + "INSERT INTO notes(title, body, created) "
            "SELECT 'note ' || x, hex(randomblob(512)), 1700000000 + x FROM c"
        )
        conn.execute(
            rows.format(n=max(1, size * 15 // 100 // 130))
            + "INSERT INTO events(ts, kind, payload, note_id) "
            "SELECT x * 0.25, 'kind' || (x % 7), hex(randomblob(40)), 1 + x % 100 FROM c"
        )
        conn.execute(  # no key: compared by content
            rows.format(n=max(1, size * 5 // 100 // 40))
            + "INSERT INTO tags SELECT x % 1000, 'tag-' || (x % 97) FROM c"
        )
        conn.execute("COMMIT")
    finally:
        conn.close()


def child(container_id: str, folder: str) -> None:
    """Copy out and inspect once (twice: the second copy is of the unchanged database)."""
    from persistaudit import inspect, schema
    from persistaudit.runtime.base import DockerContainer
    from persistaudit.snapshot import Wanted, take_snapshots

    container = docker.from_env().containers.get(container_id)
    handle = DockerContainer(container)
    out: dict[str, object] = {}
    copies: dict[str, tuple[Path, Any]] = {}
    previous = None
    for label in ("first", "again", "one-row"):
        if label == "one-row":  # the service adds a row to one table: the others keep pages
            add = f"import sqlite3; c = sqlite3.connect('{DB_IN_CONTAINER}'); {ONE_ROW}"
            if container.exec_run(["python3", "-c", add]).exit_code:
                raise SystemExit("could not add a row in the container")
        cpu = _cpu_s(resource.RUSAGE_SELF)
        started = time.monotonic()
        copy = take_snapshots(handle, [Wanted(DB_IN_CONTAINER, Path(folder) / label, 8 << 30)])
        copied = time.monotonic()
        snap = copy[0]
        if isinstance(snap, Exception):
            raise snap
        if hasattr(inspect, "inspect_snapshot"):
            facts = inspect.inspect_snapshot(snap, LIMITS, previous)
        else:  # persistaudit before issue 13 (PYTHONPATH=/path/to/older/src), for comparison
            facts = inspect.inspect_database(snap.path, LIMITS)
        schema.from_copy(snap.path, TARGET, LIMITS)
        done = time.monotonic()
        if not facts.integrity_ok:
            raise SystemExit(f"the inspection did not finish: {facts.integrity}")
        out[label] = {
            "s": done - started,
            "cpu_s": _cpu_s(resource.RUSAGE_SELF) - cpu,
            "copy_s": copied - started,
            "pause_s": snap.pause_ms / 1000,
            "reused": len(getattr(facts, "reused", ())),
            "tables": len(facts.data),
        }
        copies[label] = (snap.path, facts)
        previous = facts
    # What an audit does next: retention between the first copy and the one-row one. Row
    # digests are read there only where a table needs them (none: rowdiff compares in SQL).
    started = time.monotonic()
    (first_path, first), (after_path, after) = copies["first"], copies["one-row"]
    if hasattr(inspect, "TableRows"):
        from persistaudit import retention

        kinds = retention.TableKinds()
        found = retention.compare_copies(first_path, after_path, first, after, kinds, LIMITS)
        if found.findings() or found.unverified:
            raise SystemExit(f"retention: {found.findings()} {found.unverified}")
    out["compare_s"] = time.monotonic() - started
    # For reference: every table's row digests, as the inspection read them before.
    started = time.monotonic()
    errors = [t.error for t in first.data.values()]
    if any(errors):
        raise SystemExit(f"row digests did not finish: {errors}")
    out["digests_s"] = time.monotonic() - started
    out["rows"] = sum(first.counts.values())
    out["reused"] = hasattr(inspect, "inspect_snapshot")
    out["hwm_kb"] = _hwm_kb()
    print(json.dumps(out))


def _cpu_s(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def _hwm_kb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def dump_baseline(path: Path) -> tuple[float, float]:
    """Wall and CPU seconds of `sqlite3 db .dump | sha256sum`."""
    cpu = _cpu_s(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    subprocess.run(
        f"sqlite3 -readonly '{path}' .dump | sha256sum",
        shell=True,  # the baseline is this exact pipeline
        check=True,
        capture_output=True,
    )
    return time.monotonic() - started, _cpu_s(resource.RUSAGE_CHILDREN) - cpu


class Bench:
    """The volume and container of one run; remove() takes away everything it made."""

    def __init__(self) -> None:
        self.client = docker.from_env()
        self.run_id = engine.new_run_id()
        self.prefix = engine.run_prefix(TARGET, self.run_id)
        self.labels = engine.labels(self.run_id, TARGET)
        self.made: list[object] = []

    def container_with(self, db: Path, n: int) -> str:
        """A running container whose volume holds db (and its -wal) at DB_IN_CONTAINER."""
        volume = self.client.volumes.create(f"{self.prefix}-{n}", labels=self.labels)
        self.made.append(volume)
        loader = self.client.containers.run(
            IMAGE,
            ["sh", "-c", "cp /src/* /data/ && chmod 644 /data/*"],
            volumes={
                volume.name: {"bind": "/data"},
                str(db.parent): {"bind": "/src", "mode": "ro"},
            },
            labels=self.labels,
            name=f"{self.prefix}-load-{n}",
            detach=True,
        )
        self.made.append(loader)
        if loader.wait()["StatusCode"] != 0:
            raise SystemExit(f"could not load the database: {loader.logs().decode()}")
        os.sync()  # the set-up's gigabytes written out: no copy measured waits on them
        holder = self.client.containers.run(
            IMAGE,
            ["sleep", "infinity"],
            volumes={volume.name: {"bind": "/data"}},
            labels=self.labels,
            name=f"{self.prefix}-hold-{n}",
            detach=True,
            init=True,
        )
        self.made.append(holder)
        return str(holder.id)

    def remove(self) -> None:
        for thing in reversed(self.made):
            try:
                thing.remove(force=True)  # type: ignore[attr-defined]
            except docker.errors.DockerException as exc:
                print(f"warning: could not remove {thing}: {exc}", file=sys.stderr)
        self.made.clear()


def measure(bench: Bench, size_mb: int, work: Path, rounds: int) -> dict[str, Any]:
    folder = work / f"db-{size_mb}"
    folder.mkdir()
    db = folder / "app.db"
    generate(db, size_mb * MB)
    file_mb = sum(f.stat().st_size for f in folder.iterdir()) / MB
    container = bench.container_with(db, size_mb)
    times, cpus, agains, one_rows, copies, pauses, hwms = [], [], [], [], [], [], []
    compares: list[float] = []
    all_digests: list[float] = []
    reused, kept = False, "0"
    for _ in range(rounds):
        scratch = work / "copies"
        scratch.mkdir()
        try:
            proc = subprocess.run(
                [sys.executable, __file__, "--child", container, str(scratch)],
                capture_output=True,
                text=True,
                check=False,
            )
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        if proc.returncode:
            raise SystemExit(f"the inspection failed:\n{proc.stderr}")
        got = json.loads(proc.stdout.splitlines()[-1])
        times.append(got["first"]["s"])
        cpus.append(got["first"].get("cpu_s", float("nan")))
        copies.append(got["first"]["copy_s"])
        pauses.append(got["first"]["pause_s"])
        agains.append(got["again"]["s"])
        one_rows.append(got["one-row"]["s"])
        compares.append(got["compare_s"])
        all_digests.append(got["digests_s"])
        kept = f"{got['one-row']['reused']} of {got['one-row']['tables']}"
        hwms.append(got["hwm_kb"] / 1024)
        reused = got.get("reused", False)
    baselines = [dump_baseline(db) for _ in range(rounds)]
    shutil.rmtree(folder)
    return {
        "mb": file_mb,
        "s": statistics.median(times),
        "copy_s": statistics.median(copies),
        "pause_s": statistics.median(pauses),
        "again_s": statistics.median(agains),
        "one_row_s": statistics.median(one_rows),
        "compare_s": statistics.median(compares),
        "digests_s": statistics.median(all_digests),
        "kept": kept,
        "cpu_s": statistics.median(cpus),
        "rss": max(hwms),
        "reused": reused,
        "dump_s": statistics.median(b[0] for b in baselines),
        "dump_cpu_s": statistics.median(b[1] for b in baselines),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10,100", help="MB, comma-separated")
    parser.add_argument("--big", action="store_true", help="add the 1 GiB case")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    sizes = [int(s) for s in args.sizes.split(",") if s]
    if args.big:
        sizes.append(1024)
    work = Path(tempfile.mkdtemp(prefix=f"persistaudit-{TARGET}-"))
    bench = Bench()
    results = {}
    try:
        for size in sizes:
            results[size] = measure(bench, size, work, 1 if size >= 1024 else args.rounds)
            _print_row(size, results[size])
    except KeyboardInterrupt:
        print("interrupted: removing what the benchmark made", file=sys.stderr)
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C leaves nothing behind
        bench.remove()
        shutil.rmtree(work, ignore_errors=True)
    _print_growth(results)


def _print_row(size: int, r: dict[str, Any]) -> None:
    mbps = r["mb"] / r["s"]
    print(
        f"{size:5d} MB ({r['mb']:.1f} MB on disk)\n"
        f"  copy-out + inspection {r['s']:7.2f} s (copy {r['copy_s']:.2f} s,"
        f" paused {r['pause_s']:.2f} s) = {mbps:7.1f} MB/s"
        f" ({mbps / TARGET_MBPS:.2f}x of the {TARGET_MBPS:g} MB/s target); CPU {r['cpu_s']:.2f} s"
        f" = {r['mb'] / r['cpu_s']:.1f} MB per CPU second (the engine's own work not counted)\n"
        f"  peak RSS {r['rss']:7.0f} MB ({r['rss'] / TARGET_RSS_MB:.2f}x of the "
        f"{TARGET_RSS_MB:g} MB bound)\n"
        f"  baseline sqlite3 .dump | sha256sum {r['dump_s']:7.2f} s (CPU {r['dump_cpu_s']:.2f} s);"
        f" persistaudit / baseline: {r['s'] / r['dump_s']:.2f}x wall, "
        f"{r['cpu_s'] / r['dump_cpu_s']:.2f}x CPU\n"
        f"  the unchanged database copied out again: {r['again_s']:.2f} s "
        f"({'facts reused' if r['reused'] else 'read in full again'})\n"
        f"  after one row was added to one table: {r['one_row_s']:.2f} s "
        f"({r['one_row_s'] / r['s']:.2f}x of the first; row digests of {r['kept']} tables "
        "reused, their pages unchanged)\n"
        f"  retention between the first copy and that one: {r['compare_s']:.2f} s; for reference,"
        f" every table's row digests of the first copy: {r['digests_s']:.2f} s (read only where"
        " a check needs them)",
        flush=True,
    )


def _print_growth(results: dict[int, dict[str, Any]]) -> None:
    if len(results) < 2:
        return
    sizes = sorted(results)
    per_mb = {s: results[s]["s"] / results[s]["mb"] * 1000 for s in sizes}
    print("growth: ms per MB " + ", ".join(f"{s} MB: {per_mb[s]:.1f}" for s in sizes))
    worst = max(per_mb[b] / per_mb[a] for a, b in itertools.pairwise(sizes))
    verdict = "linear or better" if worst <= 1.25 else "worse than linear"
    print(f"growth: largest rise in ms per MB between sizes {worst:.2f}x ({verdict})")


if __name__ == "__main__":
    os.environ.setdefault("PYTHONDONTWRITEBYTECODE", "1")
    main()

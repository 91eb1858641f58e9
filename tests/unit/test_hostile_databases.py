"""Hostile databases (tests/hostile.py) never hang persistaudit, never exhaust the host, and
never turn into a verdict: what a limit stops is inconclusive or unverified, and the rest of
the audit goes on.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest

from persistaudit import constraints
from persistaudit.exceptions import QueryTimeout, SnapshotError
from persistaudit.inspect import inspect_database
from persistaudit.retention import compare
from persistaudit.schema import from_copy, from_file
from persistaudit.sqlite_guard import GuardedConnection, Limits, open_copy
from tests import hostile

QUICK = Limits(query_timeout=0.5)


def probes_of(db: Path, limits: Limits = QUICK) -> tuple[dict[str, constraints.Probe], float]:
    started = time.monotonic()
    found = constraints.probe(db, from_file(db), limits)
    return {p.target: p for p in found}, time.monotonic() - started


def assert_base_still_proven(probes: dict[str, constraints.Probe]) -> None:
    """The good tables around the hostile part were probed as usual."""
    assert probes["notes(user_id) -> users(id)"].outcome == "enforced"
    assert probes["notes: CHECK(size >= 0)"].outcome == "enforced"
    assert probes["users: UNIQUE(email)"].outcome == "enforced"


def test_a_view_that_never_ends_is_inconclusive_and_the_probes_go_on(tmp_path: Path) -> None:
    probes, took = probes_of(hostile.infinite_view(tmp_path / "view.db"))
    view = probes["forever"]
    assert (view.outcome, view.stopped) == ("inconclusive", True)
    assert view.detail == "SELECT *: timed out after 0.5 s (database.query_timeout)"
    assert not view.failed
    assert_base_still_proven(probes)
    assert took < 5


def test_an_insert_trigger_that_never_ends_stops_only_its_table(tmp_path: Path) -> None:
    probes, took = probes_of(hostile.endless_insert_trigger(tmp_path / "trigger.db"))
    tags = {t: p for t, p in probes.items() if t.startswith("tags")}
    assert sorted(tags) == [
        "tags(note_id) -> notes(id)",
        "tags: CHECK(length(label) <= 20)",
        "tags: UNIQUE(label)",
    ]
    assert all(p.outcome == "inconclusive" and p.stopped for p in tags.values())
    first = tags["tags(note_id) -> notes(id)"]
    assert first.detail == "timed out after 0.5 s (database.query_timeout)"
    assert tags["tags: UNIQUE(label)"].detail == "not tried: a limit stopped a probe before it"
    assert_base_still_proven(probes)
    # One timeout for the table, not one per probe (or per attempt to build a row).
    assert took < 3


def test_a_check_that_builds_a_gigabyte_is_inconclusive_not_a_finding(tmp_path: Path) -> None:
    db = hostile.huge_blob_check(tmp_path / "check.db")
    probes, _ = probes_of(db)
    check = probes["blobs: CHECK(length(zeroblob(n + 1000000000)) > n)"]
    assert (check.outcome, check.stopped) == ("inconclusive", True)
    assert "larger than 64.0 MiB" in check.detail
    assert_base_still_proven(probes)


def test_integrity_check_over_a_gigabyte_check_is_unfinished_not_failed(tmp_path: Path) -> None:
    facts = inspect_database(hostile.huge_blob_check(tmp_path / "check.db"))
    assert facts.integrity == []
    assert not facts.integrity_ok
    assert facts.integrity_error.startswith("PRAGMA integrity_check: a value or expression is")
    assert facts.foreign_key_error == ""  # the other facts are read as usual
    assert facts.counts["blobs"] == 1


def test_a_gigabyte_generated_column_leaves_that_table_unverified(tmp_path: Path) -> None:
    db = hostile.huge_generated_column(tmp_path / "generated.db")
    facts = inspect_database(db)
    padded = facts.data["padded"]
    assert padded.error.startswith("row digests of table padded: a value or expression is")
    assert facts.counts["padded"] == 1  # SQLite counts it without building the value
    assert facts.counts["notes"] == 1
    retention = compare(facts, inspect_database(db))
    assert retention.unverified == [padded.error]  # neither kept nor lost
    assert [t.name for t in retention.tables] == ["notes", "users"]
    assert retention.complete


def test_a_gigabyte_view_is_inconclusive(tmp_path: Path) -> None:
    probes, _ = probes_of(hostile.huge_view(tmp_path / "noise.db"))
    assert probes["noise"].outcome == "inconclusive"
    assert "larger than 64.0 MiB" in probes["noise"].detail


def test_integrity_check_that_runs_out_of_time_is_unfinished(tmp_path: Path) -> None:
    db = hostile.slow_check(tmp_path / "slow.db")
    started = time.monotonic()
    facts = inspect_database(db, Limits(query_timeout=0.3))
    assert time.monotonic() - started < 3
    assert facts.integrity_error == (
        "PRAGMA integrity_check: timed out after 0.3 s (database.query_timeout)"
    )
    assert not facts.integrity_ok
    assert facts.counts["slow"] == 3000  # the rows themselves are cheap to read


def test_every_fact_that_runs_out_of_time_says_so(tmp_path: Path) -> None:
    """With no time at all, what takes more than a moment reports its timeout."""
    conn = sqlite3.connect(tmp_path / "big.db")
    conn.executescript(hostile.BASE)
    conn.execute(
        "WITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM r LIMIT 20000)"
        " INSERT INTO notes (user_id, size) SELECT 1, i FROM r"
    )
    conn.commit()
    conn.close()
    facts = inspect_database(tmp_path / "big.db", Limits(query_timeout=1e-9))
    assert facts.integrity_error.endswith("timed out after 1e-09 s (database.query_timeout)")
    assert facts.foreign_key_error.startswith("PRAGMA foreign_key_check: timed out")
    assert facts.data["notes"].error.startswith("row digests of table notes: timed out")
    assert not facts.integrity_ok


def test_copies_run_with_trusted_schema_off(tmp_path: Path) -> None:
    db = hostile.build(tmp_path / "udf.db", "CREATE VIEW leaky AS SELECT side_effect() AS x;")
    conn = open_copy(db)
    try:
        assert conn.execute("PRAGMA trusted_schema").fetchone()[0] == 0
        assert conn.execute("PRAGMA query_only").fetchone()[0] == 1
        calls: list[int] = []
        conn.create_function("side_effect", 0, lambda: calls.append(1))
        with pytest.raises(sqlite3.OperationalError, match=r"unsafe use of side_effect\(\)"):
            conn.execute("SELECT * FROM leaky").fetchall()
        assert calls == []  # a function the schema may not call is never called
        with pytest.raises(sqlite3.OperationalError, match="readonly"):
            conn.execute("DELETE FROM notes")
    finally:
        conn.close()


JSON_SCHEMA = """
CREATE TABLE docs (id INTEGER PRIMARY KEY,
                   meta TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(meta)),
                   kind TEXT GENERATED ALWAYS AS (meta ->> '$.kind') VIRTUAL,
                   tags TEXT NOT NULL DEFAULT '[]' CHECK (json_type(tags) = 'array'));
CREATE INDEX docs_kind ON docs (json_extract(meta, '$.kind'));
CREATE VIEW doc_tags AS SELECT d.id, t.value FROM docs d, json_each(d.tags) t;
CREATE VIRTUAL TABLE search USING fts5(body);
CREATE VIEW found AS SELECT rowid, snippet(search, 0, '[', ']', '...', 4) FROM search;
INSERT INTO docs (meta, tags) VALUES ('{"kind": "a"}', '["x", "y"]');
INSERT INTO search (body) VALUES ('hello persistent world');
"""


def test_sqlite_s_own_json_and_fts_still_work_with_trusted_schema_off(tmp_path: Path) -> None:
    """SQLite 3.40 does not mark them innocuous: refusing them would fail healthy databases."""
    db = hostile.build(tmp_path / "json.db", JSON_SCHEMA)
    facts = inspect_database(db)
    assert facts.integrity_ok, facts.integrity_error or facts.integrity
    assert facts.data["docs"].rows == 1
    assert not facts.data["docs"].error
    probes, _ = probes_of(db)
    assert probes["docs: CHECK(json_type(tags) = 'array')"].outcome == "enforced"
    # The JSON index refuses invalid meta before the CHECK is evaluated: that proves nothing
    # about the CHECK, so it is inconclusive (it used to read "not enforced").
    valid = probes["docs: CHECK(json_valid(meta))"]
    assert valid.outcome == "inconclusive"
    assert valid.detail.endswith("was refused for another reason: malformed JSON")
    assert probes["doc_tags"].outcome == "ok"
    assert probes["found"].outcome == "ok"
    assert not [p for p in probes.values() if p.failed]


def test_only_sqlite_s_own_parts_are_retried_trusted(tmp_path: Path) -> None:
    conn = open_copy(hostile.build(tmp_path / "x.db", JSON_SCHEMA))
    try:
        refused = conn.sqlite_part_refused
        assert refused(sqlite3.OperationalError("unsafe use of json_valid()"))
        assert refused(sqlite3.OperationalError("unsafe use of ->>()"))
        assert refused(sqlite3.OperationalError('unsafe use of virtual table "search"'))
        assert refused(sqlite3.OperationalError('unsafe use of virtual table "pragma_table_info"'))
        assert not refused(sqlite3.OperationalError("unsafe use of my_function()"))
        assert not refused(sqlite3.OperationalError("unsafe use of load_extension()"))
        assert not refused(sqlite3.OperationalError('unsafe use of virtual table "elsewhere"'))
        assert not refused(sqlite3.OperationalError("no such table: x"))
        assert conn.trusted == {"json_valid()", "->>()", "virtual table search (fts5)"} | {
            "virtual table pragma_table_info (pragma_table_info)"
        }
    finally:
        conn.close()


def test_a_hot_journal_is_rolled_back_on_the_copy_before_it_is_read(tmp_path: Path) -> None:
    import subprocess
    import sys

    db = tmp_path / "hot.db"
    hostile.build(db, "")
    # A writer killed mid-transaction leaves a hot -journal next to a half-written file.
    subprocess.run(
        [
            sys.executable,
            "-c",
            f"import os, sqlite3; c = sqlite3.connect(r'{db}'); c.execute('PRAGMA cache_size=1');"
            "c.execute('BEGIN'); c.execute('UPDATE notes SET size = 99');"
            "c.execute('INSERT INTO users (email) SELECT hex(randomblob(900)) FROM notes, "
            "(WITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM r LIMIT 3000)"
            " SELECT i FROM r)'); os._exit(0)",
        ],
        check=True,
    )
    assert Path(f"{db}-journal").stat().st_size > 0
    facts = inspect_database(db)
    assert facts.counts == {"notes": 1, "users": 1}  # the last committed state
    assert facts.integrity_ok
    assert "notes" in from_copy(db).tables


def test_integrity_check_still_verifies_check_constraints(tmp_path: Path) -> None:
    """On a read-only (mode=ro) connection SQLite skips them, and such a row would pass."""
    db = hostile.build(
        tmp_path / "violates.db",
        "INSERT INTO notes (user_id, size) VALUES (1, -5);",
        ignore_checks=True,
    )
    assert inspect_database(db).integrity == ["CHECK constraint failed in notes"]


def test_a_file_that_is_not_a_database_is_a_snapshot_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.db"
    bad.write_bytes(b"not a database at all")
    with pytest.raises(SnapshotError, match="not a SQLite database"):
        open_copy(bad)


def test_the_deadline_is_per_statement_unless_a_stage_shares_one(tmp_path: Path) -> None:
    conn = open_copy(hostile.build(tmp_path / "s.db", ""), Limits(query_timeout=0.3))
    assert isinstance(conn, GuardedConnection)
    slow = "SELECT count(*) FROM (WITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM r"
    try:
        for _ in range(3):  # each statement has its own 0.3 s: 0.15 s each is fine
            started = time.monotonic()
            while time.monotonic() - started < 0.15:
                conn.execute(f"{slow} LIMIT 1000) SELECT i FROM r)").fetchone()
        with pytest.raises(QueryTimeout), conn.stage():  # noqa: PT012
            while True:  # together, they run out of the stage's one deadline
                conn.execute(f"{slow} LIMIT 100000) SELECT i FROM r)").fetchone()
    finally:
        conn.close()


def test_ctrl_c_during_a_hung_statement_is_not_lost(tmp_path: Path) -> None:
    """A Python progress handler would be where SIGINT is raised, and sqlite3 swallows it."""
    import subprocess
    import sys

    db = hostile.infinite_view(tmp_path / "view.db")
    script = (
        "import os, signal, threading, time\n"
        "from pathlib import Path\n"
        "from persistaudit.sqlite_guard import Limits, open_copy\n"
        f"conn = open_copy(Path(r'{db}'), Limits(query_timeout=2))\n"
        "threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGINT)).start()\n"
        "started = time.monotonic()\n"
        "try:\n"
        "    conn.execute('SELECT * FROM forever').fetchall()\n"
        "except KeyboardInterrupt:\n"
        "    print('KeyboardInterrupt after', round(time.monotonic() - started))\n"
        "except Exception as exc:\n"
        "    print('lost the signal:', type(exc).__name__, exc)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=30, check=False
    )
    # It waits for the statement's deadline (SQLite runs no Python meanwhile), then surfaces.
    assert proc.stdout.strip() == "KeyboardInterrupt after 2", proc.stdout + proc.stderr

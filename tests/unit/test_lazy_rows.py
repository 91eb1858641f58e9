"""Row digests are read when first asked for (inspect.TableRows), and only where an audit
needs them: never by the inspection itself, never for a table rowdiff compares, and for
unchanged() only for the tables whose pages moved. The verdicts stay those of reading all."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

import pytest

from persistaudit import digest, inspect
from persistaudit.audit import DatabaseState, unchanged
from persistaudit.inspect import DatabaseFacts, inspect_database
from persistaudit.retention import TableKinds, compare_copies
from tests.helpers import write_sql

SCHEMA = (
    "CREATE TABLE keep (k INTEGER PRIMARY KEY, v TEXT);"
    "CREATE TABLE grow (k INTEGER PRIMARY KEY, v TEXT);"
    "WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 500)"
    " INSERT INTO keep SELECT i, 'row ' || i FROM c;"
    "INSERT INTO grow VALUES (1, 'one'), (2, 'two');"
)


@pytest.fixture
def db(tmp_path: Path) -> Path:
    db = tmp_path / "live.db"
    write_sql(db, SCHEMA)
    return db


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The tables whose row digests were read, in order."""
    seen: list[str] = []
    real = digest.table_data

    def counted(conn: object, name: str, **kwargs: object) -> digest.TableData:
        seen.append(name)
        return real(conn, name, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(digest, "table_data", counted)
    return seen


def snapshot(db: Path, name: str, previous: DatabaseFacts | None = None) -> DatabaseFacts:
    copy = db.with_name(name)
    shutil.copy(db, copy)
    return inspect_database(copy, previous=previous)


def state(facts: DatabaseFacts) -> dict[str, DatabaseState]:
    s = DatabaseState("label")
    s.facts = facts
    return {"main": s}


def test_an_inspection_reads_no_rows_until_asked_and_then_once(db: Path, reads: list[str]) -> None:
    facts = snapshot(db, "first.db")
    assert facts.integrity_ok
    assert set(facts.data) == {"grow", "keep"}
    assert reads == []
    assert facts.data["grow"].rows == 2
    assert facts.data["grow"] is facts.data["grow"]
    assert reads == ["grow"]
    assert facts.counts == {"grow": 2, "keep": 500}  # counted by SQLite: no digest read
    assert reads == ["grow"]
    assert facts.data["keep"].rows == 500
    assert reads == ["grow", "keep"]


def test_retention_finds_a_lost_row_without_reading_any_row_digest(
    db: Path, reads: list[str]
) -> None:
    before = snapshot(db, "before.db")
    write_sql(db, "DELETE FROM grow WHERE k = 1; INSERT INTO grow VALUES (3, 'three')")
    after = snapshot(db, "after.db", previous=before)
    result = compare_copies(Path(before.path), Path(after.path), before, after, TableKinds(), None)
    assert result.findings() == ["1 row lost from grow (k 1)"]
    assert {t.name: (t.rows_before, t.lost, t.added) for t in result.tables} == {
        "grow": (2, 1, 1),
        "keep": (500, 0, 0),  # the same pages: counted, not compared
    }
    assert reads == []


def test_unchanged_reads_only_the_tables_whose_pages_moved(db: Path, reads: list[str]) -> None:
    before = snapshot(db, "before.db")
    write_sql(db, "INSERT INTO grow VALUES (9, 'gone soon'); DELETE FROM grow WHERE k = 9")
    moved = snapshot(db, "moved.db", previous=before)
    assert "grow" not in moved.reused  # its page changed, its rows did not
    assert unchanged(state(before), state(moved))
    assert reads == ["grow", "grow"]
    write_sql(db, "UPDATE grow SET v = 'TWO' WHERE k = 2")
    changed = snapshot(db, "changed.db", previous=moved)
    assert not unchanged(state(moved), state(changed))
    assert reads == ["grow", "grow", "grow"]  # moved's were read already


def test_a_table_with_the_same_pages_takes_the_previous_copys_digests(
    db: Path, reads: list[str]
) -> None:
    before = snapshot(db, "before.db")
    write_sql(db, "INSERT INTO grow VALUES (3, 'three')")
    after = snapshot(db, "after.db", previous=before)
    assert after.reused == ("keep",)
    assert after.data["keep"] is before.data["keep"]
    assert reads == ["keep"]  # read once, for both copies
    assert isinstance(after.data, inspect.TableRows)
    assert after.data.known("keep") is before.data["keep"]
    assert after.data.known("grow") is None


def test_a_copy_removed_before_its_rows_were_read_says_so(db: Path) -> None:
    facts = snapshot(db, "gone.db")
    Path(facts.path).unlink()
    assert "row digests of table grow" in facts.data["grow"].error
    assert "gone.db" in facts.data["grow"].error


def test_the_budget_of_row_digests_follows_the_order_tables_are_asked_for(
    db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(inspect, "ROW_HASHES_PER_DATABASE", 501)
    facts = snapshot(db, "budget.db")
    assert facts.data["keep"].hashes_kept  # 500 of 501
    assert not facts.data["grow"].hashes_kept  # 1 left: its digest is kept, not its rows
    assert facts.data["grow"].rows == 2


def test_threads_asking_for_one_table_read_it_once(db: Path, reads: list[str]) -> None:
    facts = snapshot(db, "threads.db")
    got: list[digest.TableData] = []
    threads = [threading.Thread(target=lambda: got.append(facts.data["keep"])) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert reads == ["keep"]
    assert all(g is got[0] for g in got)


def test_counts_leave_out_a_table_that_cannot_be_counted(db: Path) -> None:
    facts = snapshot(db, "counted.db")
    assert facts.data["grow"].rows == 2
    Path(facts.path).unlink()  # keep's rows can be neither read nor counted now
    assert facts.counts == {"grow": 2}

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from persistaudit.inspect import inspect_database
from persistaudit.retention import compare

SCHEMA = """
CREATE TABLE a (id INTEGER PRIMARY KEY, v TEXT);
CREATE TABLE b (id INTEGER PRIMARY KEY, v BLOB);
INSERT INTO a VALUES (1, 'x'), (2, 'y'), (3, 'z');
INSERT INTO b VALUES (1, x'00ff'), (2, NULL);
"""


def test_identical_databases_retain_everything(make_db: Callable[..., Path]) -> None:
    before = inspect_database(make_db(SCHEMA, "before.db"))
    after = inspect_database(make_db(SCHEMA, "after.db"))
    result = compare(before, after)
    assert result.complete
    assert (result.rows_before, result.rows_retained, result.percent) == (5, 5, 100.0)


def test_lost_changed_and_dropped(make_db: Callable[..., Path]) -> None:
    before = inspect_database(make_db(SCHEMA, "before.db"))
    after = inspect_database(
        make_db(
            SCHEMA + "DELETE FROM a WHERE id = 3; UPDATE a SET v = 'Y' WHERE id = 2;DROP TABLE b;",
            "after.db",
        )
    )
    result = compare(before, after)
    assert not result.complete
    assert result.missing_tables == ["b"]
    table_a = next(t for t in result.tables if t.name == "a")
    assert (table_a.rows_before, table_a.rows_after, table_a.retained) == (3, 2, 1)
    assert not table_a.digest_equal
    assert result.rows_retained == 1
    assert round(result.percent) == 20


def test_added_rows_keep_retention_but_change_the_digest(make_db: Callable[..., Path]) -> None:
    before = inspect_database(make_db(SCHEMA, "before.db"))
    after = inspect_database(make_db(SCHEMA + "INSERT INTO a VALUES (4, 'new');", "after.db"))
    result = compare(before, after)
    assert result.percent == 100.0
    assert not result.complete  # counts and digests must be equal too


def test_duplicate_rows_are_counted_as_a_multiset(make_db: Callable[..., Path]) -> None:
    dup = "CREATE TABLE d (v TEXT); INSERT INTO d VALUES ('x'), ('x'), ('x');"
    before = inspect_database(make_db(dup, "before.db"))
    after = inspect_database(make_db(dup + "DELETE FROM d WHERE rowid = 1;", "after.db"))
    assert compare(before, after).rows_retained == 2


VOLATILE = """
CREATE TABLE a (id INTEGER PRIMARY KEY, v TEXT);
CREATE TABLE starts (id INTEGER PRIMARY KEY, at TEXT);
INSERT INTO a VALUES (1, 'x');
INSERT INTO starts VALUES (1, 'monday');
"""


def test_a_volatile_table_is_compared_by_presence(make_db: Callable[..., Path]) -> None:
    before = inspect_database(make_db(VOLATILE, "before.db"))
    after = inspect_database(
        make_db(VOLATILE + "DELETE FROM starts; INSERT INTO starts VALUES (7, 'tue');", "after.db")
    )
    assert not compare(before, after).complete  # content changed: lost, unless volatile

    result = compare(before, after, volatile=["starts"])

    assert result.complete
    assert result.by_presence == ["starts"]
    assert [t.name for t in result.tables] == ["a"]  # not in the row counts
    assert (result.rows_before, result.percent) == (1, 100.0)


def test_a_volatile_table_that_disappears_is_still_lost(make_db: Callable[..., Path]) -> None:
    before = inspect_database(make_db(VOLATILE, "before.db"))
    after = inspect_database(make_db(VOLATILE + "DROP TABLE starts;", "after.db"))

    result = compare(before, after, volatile=["starts"])

    assert not result.complete
    assert result.missing_tables == ["starts"]
    assert result.by_presence == []

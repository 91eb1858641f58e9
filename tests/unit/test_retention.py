from __future__ import annotations

import itertools
from collections.abc import Callable
from pathlib import Path

from persistaudit.inspect import inspect_database
from persistaudit.retention import (
    Retention,
    TableKinds,
    TableRetention,
    compare,
    compare_copies,
    measured,
)
from persistaudit.sqlite_guard import Limits

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
    assert result.rows_retained == 1
    assert round(result.percent) == 20


def test_added_rows_keep_retention_and_are_no_finding(make_db: Callable[..., Path]) -> None:
    before = inspect_database(make_db(SCHEMA, "before.db"))
    after = inspect_database(make_db(SCHEMA + "INSERT INTO a VALUES (4, 'new');", "after.db"))
    result = compare(before, after)
    assert result.percent == 100.0
    assert result.complete  # a service adds rows as it works: reported, not a finding
    assert next((t.name, t.added) for t in result.tables) == ("a", 1)


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


# Rows matched by identity between two host copies (compare_copies, through rowdiff).

NOTES = """
CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT, draft INTEGER);
CREATE TABLE audit_log (id INTEGER PRIMARY KEY, event TEXT);
CREATE TABLE plans (code TEXT PRIMARY KEY, price INTEGER) WITHOUT ROWID;
INSERT INTO notes VALUES (1, 'a', 1), (2, 'b', 1), (3, 'c', 0), (4, 'd', 0), (5, 'e', 0),
    (6, 'f', 0);
INSERT INTO audit_log VALUES (1, 'created 1'), (2, 'created 2');
INSERT INTO plans VALUES ('free', 0), ('pro', 9);
"""


_pairs = itertools.count()


def by_rows(
    make_db: Callable[..., Path], after_sql: str, kinds: TableKinds | None = None, **limits: float
) -> Retention:
    n = next(_pairs)
    before = make_db(NOTES, f"before-{n}.db")
    after = make_db(NOTES + after_sql, f"after-{n}.db")
    return compare_copies(
        before,
        after,
        inspect_database(before),
        inspect_database(after),
        kinds or TableKinds(),
        Limits(**limits),
    )


def table(result: Retention, name: str) -> TableRetention:
    return next(t for t in result.tables if t.name == name)


def test_updated_rows_are_changed_not_lost(make_db: Callable[..., Path]) -> None:
    """A worker publishing drafts: the digest comparison called this data loss."""
    result = by_rows(make_db, "UPDATE notes SET draft = 0 WHERE draft = 1;")
    notes = table(result, "notes")
    assert (notes.lost, notes.changed, notes.added, notes.identity) == (
        0,
        2,
        0,
        "primary key (id)",
    )
    assert notes.changed_keys == ("1", "2")
    assert result.complete
    assert result.findings() == []


def test_added_rows_are_reported_and_no_finding(make_db: Callable[..., Path]) -> None:
    result = by_rows(make_db, "INSERT INTO audit_log VALUES (3, 'published 1');")
    assert (table(result, "audit_log").added, table(result, "audit_log").lost) == (1, 0)
    assert result.complete


def test_deleted_rows_are_lost_and_named_by_key(make_db: Callable[..., Path]) -> None:
    result = by_rows(make_db, "DELETE FROM notes WHERE id >= 4; UPDATE notes SET body = 'x';")
    notes = table(result, "notes")
    assert (notes.lost, notes.changed, notes.lost_keys) == (3, 3, ("4", "5", "6"))
    assert result.findings() == ["3 rows lost from notes (ids 4, 5, 6)"]
    assert not result.complete


def test_more_lost_rows_than_samples_say_there_are_more(make_db: Callable[..., Path]) -> None:
    result = by_rows(make_db, "DELETE FROM notes;")
    assert result.findings() == ["6 rows lost from notes (ids 1, 2, 3, 4, 5, ...)"]


def test_a_reset_and_reseeded_database_shows_its_rows_lost(make_db: Callable[..., Path]) -> None:
    """Reset and re-seeded (the seed rows come back under new ids): never "99% retained"."""
    reseed = (
        "DELETE FROM notes; DELETE FROM audit_log;"
        "INSERT INTO notes VALUES (10, 'a', 1), (11, 'b', 1);"
        "INSERT INTO audit_log VALUES (10, 'created 1');"
    )
    result = by_rows(make_db, reseed)
    notes = table(result, "notes")
    assert (notes.lost, notes.added, notes.retained) == (6, 2, 0)
    assert result.findings() == [
        "2 rows lost from audit_log (ids 1, 2)",
        "6 rows lost from notes (ids 1, 2, 3, 4, 5, ...)",
    ]


def test_a_dropped_table_is_gone_with_its_rows(make_db: Callable[..., Path]) -> None:
    result = by_rows(make_db, "DROP TABLE plans;")
    assert result.missing_tables == ["plans"]
    assert result.findings() == ["table plans gone after the cycle (2 rows lost)"]


def test_append_only_table_finds_changed_rows_not_added_ones(
    make_db: Callable[..., Path],
) -> None:
    kinds = TableKinds(append_only=["audit_log"])
    added = by_rows(make_db, "INSERT INTO audit_log VALUES (3, 'x');", kinds)
    assert added.complete
    assert table(added, "audit_log").kind == "append_only"

    rewritten = by_rows(make_db, "UPDATE audit_log SET event = 'forged' WHERE id = 2;", kinds)
    assert rewritten.findings() == ["1 row changed in append-only table audit_log (id 2)"]

    # The same change in a table of no declared kind is reported, not a finding.
    assert by_rows(make_db, "UPDATE audit_log SET event = 'forged' WHERE id = 2;").complete


def test_immutable_table_finds_any_change(make_db: Callable[..., Path]) -> None:
    kinds = TableKinds(immutable=["plans"])
    assert by_rows(make_db, "UPDATE notes SET draft = 0;", kinds).complete
    assert by_rows(make_db, "INSERT INTO plans VALUES ('team', 29);", kinds).findings() == [
        "1 row added to immutable table plans"
    ]
    assert by_rows(
        make_db, "UPDATE plans SET price = 10 WHERE code = 'pro';", kinds
    ).findings() == ["1 row changed in immutable table plans (code pro)"]
    assert by_rows(make_db, "DELETE FROM plans WHERE code = 'free';", kinds).findings() == [
        "1 row lost from plans (code free)"
    ]


def test_volatile_table_counts_by_presence_only(make_db: Callable[..., Path]) -> None:
    kinds = TableKinds(volatile=["audit_log"])
    result = by_rows(make_db, "DELETE FROM audit_log;", kinds)
    assert result.complete
    assert result.by_presence == ["audit_log"]
    assert by_rows(make_db, "DROP TABLE audit_log;", kinds).findings() == [
        "volatile table audit_log gone"
    ]


def test_a_table_rowdiff_cannot_read_falls_back_to_digests(
    make_db: Callable[..., Path], tmp_path: Path
) -> None:
    """Copies that cannot be attached together: every table by digest, and says why."""
    before = make_db(NOTES, "before.db")
    after = make_db(NOTES + "UPDATE notes SET draft = 0 WHERE id = 1;", "after.db")
    facts = inspect_database(before), inspect_database(after)
    for f in facts:  # row digests are read when asked for: ask before the file goes
        assert not any(t.error for t in f.data.values())
    before.unlink()  # attach needs the file; the facts were read already
    result = compare_copies(before, after, *facts, TableKinds())
    notes = table(result, "notes")
    assert notes.identity == "content digest"
    assert notes.note.startswith("the copies could not be attached together")
    assert (notes.lost, notes.added) == (1, 1)  # a digest cannot tell a changed row
    assert [t.name for t in result.by_digest] == ["audit_log", "notes", "plans"]


def test_a_limit_leaves_the_table_unverified(make_db: Callable[..., Path]) -> None:
    """A comparison stopped by the deadline proves neither loss nor retention: BLOCKED."""
    big = (
        "CREATE TABLE t (k TEXT, v TEXT); WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL "
        "SELECT i + 1 FROM c WHERE i < 300000) INSERT INTO t SELECT 'k', 'row ' || i FROM c;"
    )
    changed = big + "UPDATE t SET v = 'changed' WHERE rowid = 7;"  # else equal pages: no read
    before, after = make_db(big, "big-before.db"), make_db(changed, "big-after.db")
    facts = inspect_database(before), inspect_database(after)
    result = compare_copies(before, after, *facts, TableKinds(), Limits(query_timeout=0.001))
    assert result.tables == []  # neither kept nor lost
    assert len(result.unverified) == 1
    assert result.unverified[0].startswith("comparing rows of table t: timed out")


def test_the_metric_is_the_canaries_and_never_zero_without_a_snapshot(
    make_db: Callable[..., Path],
) -> None:
    """Every canary read back but no snapshot after the cycle: the metric said 0.0%."""
    assert measured(100.0, None) == "100.0%"
    assert measured(None, None) == "not measured"
    lost = by_rows(make_db, "DELETE FROM notes WHERE id = 6;")
    assert measured(95.0, lost) == "95.0%"  # the canaries are the headline
    assert measured(None, lost) == "90.0% of rows kept"  # 9 of 10: a database without them

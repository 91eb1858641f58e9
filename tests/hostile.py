"""Builders of hostile databases: each is what a buggy or malicious service could leave behind.

Every builder writes a SQLite file at the given path and returns it. They are small (a few
kilobytes) unless they say otherwise: what makes them hostile is the schema, which persistaudit
runs when it reads, checks and probes a copy.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

# A good little schema the hostile parts are added to, so that probes of the rest can be seen
# to go on: a foreign key, a UNIQUE and a CHECK that are all enforced.
BASE = """
CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT NOT NULL UNIQUE);
CREATE TABLE notes (id INTEGER PRIMARY KEY, user_id INTEGER NOT NULL REFERENCES users(id),
                    size INTEGER NOT NULL CHECK (size >= 0));
INSERT INTO users (email) VALUES ('a@example.org');
INSERT INTO notes (user_id, size) VALUES (1, 10);
"""
# Counts without end: SQLite streams a recursive CTE, and count(*) needs all of it.
FOREVER = "(WITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM r) SELECT count(*) FROM r)"
GIGABYTE = 1_000_000_000


def build(path: Path, sql: str, *, ignore_checks: bool = False) -> Path:
    conn = sqlite3.connect(path)
    try:
        if ignore_checks:  # rows a hostile CHECK would take too long (or too much) to admit
            conn.execute("PRAGMA ignore_check_constraints = ON")
        conn.executescript(BASE + sql)
        conn.commit()
    finally:
        conn.close()
    return path


def infinite_view(path: Path) -> Path:
    """A view whose every query runs forever."""
    return build(path, f"CREATE VIEW forever AS SELECT {FOREVER} AS n;")


def endless_insert_trigger(path: Path) -> Path:
    """A BEFORE INSERT trigger that never ends: every insert into `tags` hangs."""
    return build(
        path,
        "CREATE TABLE tags (id INTEGER PRIMARY KEY, note_id INTEGER NOT NULL REFERENCES notes(id),"
        " label TEXT NOT NULL UNIQUE CHECK (length(label) <= 20));"
        f"CREATE TRIGGER tags_forever BEFORE INSERT ON tags BEGIN SELECT {FOREVER}; END;",
    )


def huge_blob_check(path: Path) -> Path:
    """A CHECK that builds a gigabyte blob for every row it checks (insert, integrity_check)."""
    return build(
        path,
        "CREATE TABLE blobs (id INTEGER PRIMARY KEY, n INTEGER NOT NULL"
        f" CHECK (length(zeroblob(n + {GIGABYTE})) > n));"
        "INSERT INTO blobs (n) VALUES (1);",
        ignore_checks=True,
    )


def huge_generated_column(path: Path) -> Path:
    """A virtual generated column of a gigabyte: reading the table's rows builds it."""
    return build(
        path,
        "CREATE TABLE padded (id INTEGER PRIMARY KEY, v TEXT,"
        f" pad BLOB GENERATED ALWAYS AS (zeroblob({GIGABYTE})) VIRTUAL);"
        "INSERT INTO padded (v) VALUES ('x');",
    )


def huge_view(path: Path) -> Path:
    """A view whose one row holds a gigabyte blob, random bytes at that."""
    return build(path, f"CREATE VIEW noise AS SELECT randomblob({GIGABYTE}) AS b;")


def slow_check(path: Path, rows: int = 3000) -> Path:
    """A CHECK that costs a millisecond per row: integrity_check takes seconds."""
    return build(
        path,
        "CREATE TABLE slow (x INTEGER NOT NULL CHECK (length(hex(zeroblob(x))) = 2 * x));"
        f"WITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM r LIMIT {rows})"
        " INSERT INTO slow SELECT 200000 FROM r;",
        ignore_checks=True,
    )


def large_blob(path: Path, size: int, *, last_byte: int = 0, text_after: str = "") -> Path:
    """A table holding one blob of size bytes (zeros, then last_byte), then a text column."""
    conn = sqlite3.connect(path)
    try:
        conn.execute("CREATE TABLE files (id INTEGER PRIMARY KEY, data BLOB, name TEXT)")
        conn.execute(
            "INSERT INTO files (data, name) VALUES (CAST(zeroblob(?) || ? AS BLOB), ?)",
            (size - 1, bytes([last_byte]), text_after),
        )
        conn.commit()
    finally:
        conn.close()
    return path

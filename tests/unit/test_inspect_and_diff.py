from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from persistaudit.diff import diff_tables
from persistaudit.exceptions import ConfigError, SnapshotError
from persistaudit.inspect import inspect_database
from persistaudit.manifest import Manifest, from_data, load_manifest

SCHEMA = """
CREATE TABLE owners (id INTEGER PRIMARY KEY, name TEXT NOT NULL);
CREATE TABLE items (id INTEGER PRIMARY KEY, owner_id INTEGER REFERENCES owners(id), name TEXT);
CREATE INDEX ix_items_owner ON items(owner_id);
CREATE VIEW item_names AS SELECT name FROM items;
INSERT INTO owners VALUES (1, 'ada');
INSERT INTO items VALUES (1, 1, 'pen'), (2, 1, 'ink');
"""


def test_facts_of_a_healthy_database(make_db: Callable[..., Path]) -> None:
    facts = inspect_database(make_db(SCHEMA, journal="wal"))
    assert facts.journal_mode == "wal"
    assert facts.header_write_version == 2
    assert facts.integrity_ok
    assert facts.foreign_key_violations == []
    assert sorted(facts.tables) == ["items", "owners"]
    assert facts.counts == {"items": 2, "owners": 1}


def test_rollback_journal_and_orphans_are_seen(make_db: Callable[..., Path]) -> None:
    facts = inspect_database(make_db(SCHEMA + "INSERT INTO items VALUES (3, 99, 'lost');"))
    assert facts.journal_mode == "delete"
    assert facts.header_write_version == 1
    [violation] = facts.foreign_key_violations
    assert (violation.table, violation.rowid, violation.parent) == ("items", 3, "owners")


def test_corruption_is_reported(make_db: Callable[..., Path]) -> None:
    path = make_db(SCHEMA + "CREATE INDEX ix_owner_name ON owners(name);")
    conn = sqlite3.connect(path)
    root = conn.execute(
        "SELECT rootpage FROM sqlite_master WHERE name = 'ix_owner_name'"
    ).fetchone()
    page_size = conn.execute("PRAGMA page_size").fetchone()[0]
    conn.close()
    data = bytearray(path.read_bytes())
    page = slice((root[0] - 1) * page_size, root[0] * page_size)
    assert b"ada" in data[page]
    data[page] = data[page].replace(b"ada", b"bob")  # the index no longer matches its table
    path.write_bytes(bytes(data))
    facts = inspect_database(path)
    assert not facts.integrity_ok
    assert any("ix_owner_name" in line for line in facts.integrity)


@pytest.mark.parametrize(
    ("content", "message"),
    [(b"", "empty"), (b"hello, not a database" * 10, "not a SQLite database")],
)
def test_not_a_database(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "x.db"
    path.write_bytes(content)
    with pytest.raises(SnapshotError, match=message):
        inspect_database(path)


def manifest(tables: list[str], **options: object) -> Manifest:
    return from_data({"manifest_version": 1, "tables": {t: {} for t in tables}, "options": options})


def test_diff_names_missing_and_unexpected(make_db: Callable[..., Path]) -> None:
    facts = inspect_database(make_db(SCHEMA))
    diff = diff_tables(manifest(["items", "owners", "tags", "users"]), facts)
    assert diff.missing == ["tags", "users"]
    assert diff.present == ["items", "owners"]
    assert not diff.ok
    diff = diff_tables(manifest(["items"]), facts)
    assert diff.unexpected == ["owners"]
    assert not diff.ok
    assert diff_tables(manifest(["items"], allow_extra_tables=True), facts).ok
    assert diff_tables(manifest(["items"], ignore=["own*"]), facts).ok
    assert diff_tables(manifest(["items", "owners"]), facts).ok


def test_manifest_errors(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    path.write_text("manifest_version: 2\ntables: {a: {}}\n")
    with pytest.raises(
        ConfigError,
        match=r"manifest_version 2 is not supported \(this persistaudit reads version 1\)",
    ):
        load_manifest(path)
    path.write_text("manifest_version: 1\ntables:\n  a: {colums: []}\n")
    with pytest.raises(ConfigError, match=r"m.yaml:3: tables.a.colums: unknown field"):
        load_manifest(path)

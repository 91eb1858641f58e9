from __future__ import annotations

import sqlite3
from pathlib import Path

from persistaudit.constraints import probe
from persistaudit.manifest import replace
from persistaudit.schema import from_file

SCHEMA = """
CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT NOT NULL UNIQUE,
                    kind TEXT NOT NULL CHECK (kind IN ('a', 'b')), prefs TEXT);
CREATE TABLE notes (id INTEGER PRIMARY KEY, user_id INTEGER NOT NULL REFERENCES users(id),
                    size INTEGER NOT NULL CHECK (size >= 0), title TEXT NOT NULL,
                    body TEXT CHECK (length(body) < 100000));
CREATE UNIQUE INDEX ux_notes_title ON notes (user_id, title);
CREATE VIEW v AS SELECT n.id, u.email FROM notes n JOIN users u ON u.id = n.user_id;
"""


def make(tmp_path: Path, name: str, sql: str) -> Path:
    path = tmp_path / name
    conn = sqlite3.connect(path)
    conn.executescript(sql)
    conn.close()
    return path


def outcomes(db: Path, manifest_db: Path) -> dict[str, str]:
    return {p.target: p.outcome for p in probe(db, from_file(manifest_db))}


def test_every_declared_constraint_is_proven_on_a_good_database(tmp_path: Path) -> None:
    good = make(tmp_path, "good.db", SCHEMA)
    result = outcomes(good, good)
    assert result == {
        "notes(user_id) -> users(id)": "enforced",
        "notes: UNIQUE(user_id, title)": "enforced",
        "notes: CHECK(size >= 0)": "enforced",
        "notes: CHECK(length(body) < 100000)": "inconclusive",  # no candidate is that long
        "users: UNIQUE(email)": "enforced",
        "users: CHECK(kind in ('a', 'b'))": "enforced",
        "v": "ok",
    }


def test_missing_check_and_unique_are_not_enforced(tmp_path: Path) -> None:
    good = make(tmp_path, "good.db", SCHEMA)
    weak = SCHEMA.replace(" CHECK (size >= 0)", "").replace("CREATE UNIQUE INDEX", "CREATE INDEX")
    bad = make(tmp_path, "bad.db", weak)
    result = {p.target: p for p in probe(bad, from_file(good))}
    assert result["notes: CHECK(size >= 0)"].outcome == "not enforced"
    assert "size=-1 violates it, yet was accepted" in result["notes: CHECK(size >= 0)"].detail
    assert result["notes: UNIQUE(user_id, title)"].outcome == "not enforced"
    assert result["users: CHECK(kind in ('a', 'b'))"].outcome == "enforced"


def test_invalid_json_and_a_view_broken_by_a_rename_fail(tmp_path: Path) -> None:
    manifest = from_file(make(tmp_path, "good.db", SCHEMA))
    users = manifest.tables["users"]
    cols = [replace(c, json_valid=c.name == "prefs") for c in users.columns]
    manifest = replace(manifest, tables={**manifest.tables, "users": replace(users, columns=cols)})
    broken = make(
        tmp_path,
        "broken.db",
        SCHEMA + "INSERT INTO users (email, kind, prefs) VALUES ('a@x', 'a', '{oops');"
        # The legacy rename leaves the view pointing at a table that no longer exists.
        "PRAGMA legacy_alter_table = ON; ALTER TABLE notes RENAME TO notes_v2;",
    )
    result = {p.target: p for p in probe(broken, manifest)}
    assert result["users.prefs"].outcome == "failed"
    assert "1 row(s) hold invalid JSON" in result["users.prefs"].detail
    assert result["v"].outcome == "failed"
    assert "no such table: main.notes" in result["v"].detail


def test_probes_leave_the_database_untouched(tmp_path: Path) -> None:
    good = make(tmp_path, "good.db", SCHEMA)
    before = good.read_bytes()
    probe(good, from_file(good))
    assert good.read_bytes() == before

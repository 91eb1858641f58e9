"""Shared helpers for persistaudit's own tests."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.helpers import GOOD_CONFIG, MANIFEST


@pytest.fixture
def make_db(tmp_path: Path) -> Iterator[Callable[..., Path]]:
    """Create a real SQLite file from SQL; returns its path."""
    made: list[sqlite3.Connection] = []

    def make(sql: str, name: str = "test.db", journal: str = "delete") -> Path:
        path = tmp_path / name
        conn = sqlite3.connect(path)
        conn.execute(f"PRAGMA journal_mode = {journal}")
        conn.executescript(sql)
        conn.commit()
        made.append(conn)
        return path

    yield make
    for conn in made:
        conn.close()


@pytest.fixture
def config_dir(tmp_path: Path) -> Path:
    (tmp_path / "audit.yaml").write_text(GOOD_CONFIG)
    (tmp_path / "manifest.yaml").write_text(MANIFEST)
    return tmp_path

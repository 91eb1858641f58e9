"""The copy-out and its fingerprint on a real engine: the archive of a live WAL database is
copied whole, an unchanged database's next copy reuses its facts, and one row changed by the
service (the same size) is found, never hidden by the shortcut."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from persistaudit import engine as engine_module
from persistaudit.config import load_config
from persistaudit.inspect import inspect_snapshot
from persistaudit.retention import TableKinds, compare_copies
from persistaudit.runtime import DockerContainer, ImageRuntime, runtime_for
from persistaudit.snapshot import Snapshot, Wanted, take_snapshots
from tests.helpers import NOTES_APP

pytestmark = pytest.mark.docker


@pytest.fixture(scope="module")
def notes_app(engine: docker.DockerClient) -> Iterator[tuple[ImageRuntime, str]]:
    config = load_config(NOTES_APP / "audit.yaml")
    runtime = runtime_for(config, engine, engine_module.new_run_id())
    assert isinstance(runtime, ImageRuntime)
    try:
        runtime.start()
        yield runtime, config.declared_databases[0].path
    finally:
        removal = runtime.close()
    assert not removal.left


def copy(runtime: ImageRuntime, db: str, dest: Path) -> Snapshot:
    handle = runtime.container
    assert isinstance(handle, DockerContainer)
    result = take_snapshots(handle, [Wanted(db, dest, 10**9)])[0]
    assert isinstance(result, Snapshot), result
    return result


def run_sql(runtime: ImageRuntime, db: str, sql: str) -> None:
    """A write in the container, beside the service's own connection (WAL mode)."""
    script = f"import sqlite3; c = sqlite3.connect({db!r}); c.execute({sql!r}); c.commit()"
    code, output = runtime.container.exec(["python3", "-c", script])
    assert code == 0, output


def test_an_unchanged_copy_is_reused_and_a_changed_row_is_found(
    notes_app: tuple[ImageRuntime, str], tmp_path: Path
) -> None:
    runtime, db = notes_app
    run_sql(
        runtime,
        db,
        "INSERT INTO users (email, display_name, created_at) "
        "VALUES ('fp@example.org', 'aaaa', '2026-01-01')",
    )
    first, second = copy(runtime, db, tmp_path / "1"), copy(runtime, db, tmp_path / "2")
    assert first.fingerprint
    assert set(first.files) >= {"notes.db", "notes.db-wal"}  # a live WAL database, copied whole
    facts = inspect_snapshot(first)
    assert facts.integrity_ok
    # notes-app writes nothing unasked: the second copy is byte-identical but for its -shm
    assert first.fingerprint == second.fingerprint
    again = inspect_snapshot(second, previous=facts)
    assert again.path == str(second.path)
    assert again.data == facts.data
    run_sql(runtime, db, "UPDATE users SET display_name = 'bbbb' WHERE display_name = 'aaaa'")
    third = copy(runtime, db, tmp_path / "3")
    assert third.fingerprint != first.fingerprint
    changed = inspect_snapshot(third, previous=facts)
    assert changed.data["users"].digest != facts.data["users"].digest
    result = compare_copies(first.path, third.path, facts, changed, TableKinds())
    users = next(t for t in result.tables if t.name == "users")
    assert (users.lost, users.changed, users.added) == (0, 1, 0)

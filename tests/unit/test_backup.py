"""The backup module on real SQLite files: what a backup holds, its digest, its verification."""

from __future__ import annotations

import hashlib
import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from persistaudit import backup, schema
from persistaudit.audit import TargetAudit
from persistaudit.config import load_config
from persistaudit.exceptions import QueryTimeout, RestoreUnsupported
from persistaudit.sqlite_files import companion, copy_database
from persistaudit.sqlite_guard import Limits
from tests.unit.fakes import FakeRuntime

ROWS = 20


@pytest.fixture
def live(tmp_path: Path) -> Iterator[tuple[Path, sqlite3.Connection]]:
    """A WAL database whose last ROWS rows are still in the WAL (no checkpoint yet), with its
    writer's connection open, as in a running service."""
    path = tmp_path / "live" / "app.db"
    path.parent.mkdir()
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA wal_autocheckpoint = 0")
    conn.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, title TEXT NOT NULL)")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # the schema is in the main file
    for i in range(ROWS):
        conn.execute("INSERT INTO notes (title) VALUES (?)", (f"canary-{i}",))
    assert companion(path, "-wal").stat().st_size > 0
    yield path, conn
    conn.close()


def snapshot_of(live_db: Path, folder: Path) -> Path:
    """A host copy with its WAL, as the paused snapshot is."""
    folder.mkdir()
    copy = folder / live_db.name
    copy_database(live_db, copy)
    assert companion(copy, "-wal").exists()
    return copy


def count(path: Path) -> int:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return int(conn.execute("SELECT count(*) FROM notes").fetchone()[0])
    finally:
        conn.close()


def test_an_api_backup_holds_the_rows_still_in_the_wal(
    live: tuple[Path, sqlite3.Connection], tmp_path: Path
) -> None:
    snap = snapshot_of(live[0], tmp_path / "snap")
    dest = tmp_path / "app.backup.db"
    seconds = backup.api_backup(snap, dest)
    assert seconds >= 0
    assert not companion(dest, "-wal").exists()  # one self-contained file
    assert count(dest) == ROWS
    result = backup.verify(dest, schema.from_copy(snap), "app")
    assert result.sound, result


def test_a_copy_of_the_main_file_alone_misses_them_yet_is_sound(
    live: tuple[Path, sqlite3.Connection], tmp_path: Path
) -> None:
    """bad-backup's defect: integrity is fine, the recent rows are not there."""
    snap = snapshot_of(live[0], tmp_path / "snap")
    plain = tmp_path / "plain.db"
    shutil.copyfile(live[0], plain)
    result = backup.verify(plain, schema.from_copy(snap), "app")
    assert result.sound, result
    assert count(plain) == 0


def test_a_corrupt_backup_fails_its_integrity_check(tmp_path: Path) -> None:
    path = tmp_path / "corrupt.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
    conn.execute("CREATE INDEX iv ON t (v)")
    conn.executemany("INSERT INTO t (v) VALUES (?)", [(f"value-{i:05d}" * 4,) for i in range(2000)])
    conn.commit()
    conn.close()
    data = bytearray(path.read_bytes())
    offset = (len(data) // 4096 - 2) * 4096 + 2000  # inside the last leaf pages
    data[offset : offset + 64] = b"\xff" * 64
    path.write_bytes(bytes(data))
    result = backup.verify(path, None, "corrupt")
    assert not result.sound
    assert "malformed" in result.integrity[-1]
    assert result.integrity[0] != "ok"
    assert "page" in result.integrity[0]  # what integrity_check said, for the evidence
    assert result.facts is not None  # its rows, read when asked for, say why they cannot be
    assert "malformed" in result.facts.data["t"].error


def test_a_file_that_is_no_database_is_an_error_not_a_pass(tmp_path: Path) -> None:
    path = tmp_path / "notes.backup.db"
    path.write_bytes(b"tar: notes.db: Cannot open: Permission denied\n" * 10)
    result = backup.verify(path, None, "app")
    assert result.error
    assert "not a SQLite database" in result.error
    assert not result.sound


def test_a_backup_with_another_schema_is_not_sound(
    live: tuple[Path, sqlite3.Connection], tmp_path: Path
) -> None:
    snap = snapshot_of(live[0], tmp_path / "snap")
    older = tmp_path / "older.db"
    conn = sqlite3.connect(older)
    conn.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY)")
    conn.close()
    result = backup.verify(older, schema.from_copy(snap), "app")
    assert result.facts is not None
    assert result.facts.integrity_ok
    assert result.schema_changes
    assert "title" in " ".join(result.schema_changes)
    assert not result.sound


def test_the_digest_is_the_files_sha256_and_size(tmp_path: Path) -> None:
    path = tmp_path / "b.db"
    data = bytes(range(256)) * 5000  # more than one chunk of the reader
    path.write_bytes(data)
    digest = backup.digest_of(path)
    assert digest == backup.Digest(hashlib.sha256(data).hexdigest(), len(data))


def test_a_backup_past_its_deadline_stops_and_leaves_no_file(tmp_path: Path) -> None:
    source = tmp_path / "big.db"
    conn = sqlite3.connect(source)
    conn.execute("CREATE TABLE t (v BLOB)")
    conn.executemany("INSERT INTO t VALUES (zeroblob(4000))", [()] * 2000)  # ~2000 pages
    conn.commit()
    conn.close()
    dest = tmp_path / "big.backup.db"
    with pytest.raises(QueryTimeout, match="backing up the database"):
        backup.api_backup(source, dest, Limits(query_timeout=1e-9))
    assert not dest.exists()


def fake_audit(config_dir: Path, tmp_path: Path) -> tuple[TargetAudit, FakeRuntime]:
    """An audit of the good config on the Docker-free runtime (the caller closes it)."""
    config = load_config(config_dir / "audit.yaml")
    runtime = FakeRuntime(config, tmp_path / "volume")
    workdir = tmp_path / "work"
    workdir.mkdir()
    return TargetAudit(config, None, "run1", workdir, lambda _msg: None, runtime=runtime), runtime


def test_a_driver_without_a_restore_says_so() -> None:
    with pytest.raises(RestoreUnsupported, match="cannot restore a backup"):
        FakeRuntime.__new__(FakeRuntime).restore({}, Path("."))


def test_the_stage_backs_up_on_a_fake_target_and_says_why_it_cannot_restore(
    config_dir: Path, tmp_path: Path
) -> None:
    """The backup stage on the Docker-free runtime: a sound API backup of the served file,
    recorded by its digest; the fake driver has no restore, so the restore is not rehearsed
    (BLOCKED with the driver's one line), never passed or failed."""
    from persistaudit import backup_stage

    audit, runtime = fake_audit(config_dir, tmp_path)
    config = audit.config
    try:
        assert audit.fresh.blocked is None
        run = audit.stage("backup")
        assert isinstance(run, backup_stage.BackupRun)
        assert run.route == "api"
        assert not run.blocked
        assert len(run.canaries) == config.canary.records
        (result,) = run.backups.values()
        assert result.verification is not None
        assert result.verification.sound
        assert result.digest is not None
        assert result.snapshot is not None
        assert backup.digest_of(result.snapshot.path) == result.digest
        assert result.missed is not None
        assert result.missed.rows_lost == 0
        assert "fake driver cannot restore a backup" in run.restore_blocked
        assert run.read_back is None
    finally:
        runtime.close()


def test_a_container_removed_as_the_backup_snapshots_leaves_the_stage_blocked(
    config_dir: Path, tmp_path: Path
) -> None:
    """Something else removes the container just as the stage snapshots the live database:
    the stage is BLOCKED with what was removed, and the error does not escape the stage."""
    from persistaudit import backup_stage
    from persistaudit.exceptions import TargetRemoved

    audit, runtime = fake_audit(config_dir, tmp_path)
    config = audit.config
    try:
        assert audit.fresh.blocked is None
        handle = runtime.container

        def vanished(path: str) -> None:
            runtime.gone.append(f"container {handle.name}")
            raise TargetRemoved(f"container {handle.name} was removed by something else")

        handle.get_archive = vanished  # type: ignore[assignment,method-assign]
        run = audit.stage("backup")
        assert isinstance(run, backup_stage.BackupRun)
        assert len(run.canaries) == config.canary.records  # written before the removal
        assert f"container {handle.name} was removed by something else during the backup" in (
            run.blocked
        )
        assert not run.restore_failure
        assert run.read_back is None
    finally:
        runtime.close()

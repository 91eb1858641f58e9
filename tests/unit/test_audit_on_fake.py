"""Audit stages run on the Docker-free FakeRuntime: real SQLite files, real snapshots.

What the stages conclude comes from the files the fake serves, so each test changes a file
(or the container's state) and checks that the stage notices.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest

from persistaudit.audit import NOTHING_NEW, READ_ONLY_WRITES, TargetAudit
from persistaudit.config import TargetConfig, load_config
from persistaudit.exceptions import SnapshotError
from persistaudit.layer_files import LayerScan
from persistaudit.readiness import ContainerState
from persistaudit.snapshot import take_snapshot
from persistaudit.sqlite_files import MAGIC, companions
from tests.unit.fakes import FakeHandle, FakeRuntime


@pytest.fixture
def config(config_dir: Path) -> TargetConfig:
    """tests.helpers.GOOD_CONFIG: /data/app.db on a volume at /data, 3 canaries on /items."""
    return load_config(config_dir / "audit.yaml")


@pytest.fixture
def volume(tmp_path: Path) -> Path:
    return tmp_path / "volume"


@pytest.fixture
def runtime(config: TargetConfig, volume: Path) -> Any:
    fake = FakeRuntime(config, volume)
    yield fake
    fake.close()


def make_audit(config: TargetConfig, runtime: FakeRuntime, tmp_path: Path) -> TargetAudit:
    workdir = tmp_path / "work"
    workdir.mkdir()
    # No engine client: the runtime is given, so nothing is built from the driver table.
    return TargetAudit(config, None, "run1", workdir, lambda _msg: None, runtime=runtime)


def test_fresh_install_facts_come_from_the_served_file(
    config: TargetConfig, runtime: FakeRuntime, volume: Path, tmp_path: Path
) -> None:
    def install(folder: Path) -> None:  # the image ships a database with two tables
        folder.mkdir(parents=True, exist_ok=True)
        with sqlite3.connect(folder / "app.db") as conn:
            conn.execute("CREATE TABLE owners (id INTEGER PRIMARY KEY)")
            conn.execute("INSERT INTO owners VALUES (7)")
        conn.close()

    runtime.hooks["start"] = install
    audit = make_audit(config, runtime, tmp_path)

    fresh = audit.fresh

    assert fresh.blocked is None
    facts = fresh.database.facts
    assert facts is not None
    assert set(facts.tables) == {"items", "owners"}
    assert facts.counts == {"items": 0, "owners": 1}
    assert facts.wal  # the service switched it to WAL on boot
    assert fresh.database.schema is not None
    assert runtime.container.pauses == 1  # the copy was taken paused
    assert "docker volume create " + str(volume) in fresh.actions[0].content
    assert runtime.calls == ["start"]


def test_fresh_install_of_a_file_that_is_no_database_is_an_error(
    config: TargetConfig, runtime: FakeRuntime, tmp_path: Path
) -> None:
    runtime.service.boot = lambda: None  # type: ignore[method-assign]  # a service that writes

    def garbage(folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "app.db").write_bytes(b"not a database at all\n" * 100)

    runtime.hooks["start"] = garbage
    fresh = make_audit(config, runtime, tmp_path).fresh

    assert fresh.blocked is None
    assert fresh.database.facts is None
    assert "app.db" in fresh.database.error


def test_fresh_install_of_a_service_that_exits_is_blocked_with_its_exit_code(
    config: TargetConfig, runtime: FakeRuntime, tmp_path: Path
) -> None:
    audit = make_audit(config, runtime, tmp_path)
    original = runtime._new_handle

    def exiting() -> Any:
        handle = original()
        handle.states = [ContainerState("exited", 3, 0, "")]
        handle.lines.append("fatal: licence key missing")
        return handle

    runtime._new_handle = exiting  # type: ignore[method-assign]

    fresh = audit.fresh

    assert fresh.blocked is not None
    assert fresh.blocked.reason == "exited"
    assert "exited with code 3" in str(fresh.blocked)
    assert "fatal: licence key missing" in fresh.logs


def test_a_restart_that_keeps_the_file_retains_every_canary(
    config: TargetConfig, runtime: FakeRuntime, tmp_path: Path
) -> None:
    audit = make_audit(config, runtime, tmp_path)
    assert audit.fresh.blocked is None

    cycle = audit.restart_cycle

    assert not cycle.blocked
    assert not cycle.failure
    assert cycle.read_back is not None
    assert not cycle.read_back.missing
    assert len(cycle.read_back.found) == config.canary.records == 3
    assert cycle.retention["main"].complete
    assert cycle.retention["main"].rows_before == 3
    assert runtime.calls == ["start", "restart"]


def test_a_restart_that_loses_the_file_is_a_retention_problem(
    config: TargetConfig, runtime: FakeRuntime, tmp_path: Path
) -> None:
    def lose(folder: Path) -> None:  # the service keeps its database somewhere it loses
        for name in ("app.db", "app.db-wal", "app.db-shm"):
            (folder / name).unlink(missing_ok=True)

    runtime.hooks["restart"] = lose
    audit = make_audit(config, runtime, tmp_path)
    assert audit.fresh.blocked is None

    cycle = audit.restart_cycle

    assert not cycle.blocked  # the target came back: this is data loss, not a blocked cycle
    assert cycle.read_back is not None
    assert len(cycle.read_back.missing) == 3
    assert not cycle.read_back.found
    assert not cycle.retention["main"].complete
    assert cycle.retention["main"].rows_before == 3
    assert cycle.retention["main"].rows_retained == 0


def lose_database(folder: Path) -> None:
    """A hook: the service keeps its database somewhere it loses."""
    for name in ("app.db", "app.db-wal", "app.db-shm"):
        (folder / name).unlink(missing_ok=True)


def test_each_cycle_reads_back_only_its_own_canaries(config: TargetConfig, tmp_path: Path) -> None:
    """The re-create's result is the same alone as after a restart that lost every row.

    Before stages owned their canaries, the re-create also read back the restart's (lost)
    canaries: it failed after a lossy restart and passed alone.
    """
    alone_runtime = FakeRuntime(config, tmp_path / "alone" / "volume")
    after_runtime = FakeRuntime(config, tmp_path / "after" / "volume")
    after_runtime.hooks["restart"] = lose_database
    try:
        (tmp_path / "alone").mkdir(exist_ok=True)
        (tmp_path / "after").mkdir(exist_ok=True)
        alone = make_audit(config, alone_runtime, tmp_path / "alone")
        after = make_audit(config, after_runtime, tmp_path / "after")
        assert alone.fresh.blocked is None
        assert after.fresh.blocked is None

        restart = after.restart_cycle
        assert restart.read_back is not None
        assert len(restart.read_back.missing) == 3  # the restart lost its canaries

        recreated_alone = alone.recreate_cycle
        recreated_after = after.recreate_cycle
    finally:
        alone_runtime.close()
        after_runtime.close()

    assert after_runtime.calls == ["start", "restart", "recreate"]
    assert alone_runtime.calls == ["start", "recreate"]
    for cycle in (recreated_alone, recreated_after):
        assert cycle.read_back is not None
        assert not cycle.read_back.missing
        assert len(cycle.read_back.found) == config.canary.records
    # The same markers whichever ran first, and none of the restart's.
    assert recreated_alone.canaries == recreated_after.canaries
    assert not {c.marker for c in restart.canaries} & {c.marker for c in recreated_after.canaries}


def test_a_target_removed_during_the_cycle_is_blocked_not_data_loss(
    config: TargetConfig, runtime: FakeRuntime, tmp_path: Path
) -> None:
    def removed(folder: Path) -> None:
        for name in ("app.db", "app.db-wal", "app.db-shm"):
            (folder / name).unlink(missing_ok=True)
        runtime.gone.append("volume fake")

    runtime.hooks["recreate"] = removed
    audit = make_audit(config, runtime, tmp_path)
    assert audit.fresh.blocked is None

    cycle = audit.recreate_cycle

    assert "volume fake was removed by something else" in cycle.blocked
    assert not cycle.failure


def test_take_snapshot_copies_the_database_and_its_wal_through_the_handle(
    config: TargetConfig, runtime: FakeRuntime, volume: Path, tmp_path: Path
) -> None:
    runtime.start()
    # An open connection keeps the WAL from being checkpointed: the new row is only in -wal.
    reader = sqlite3.connect(volume / "app.db")
    try:
        reader.execute("SELECT 1 FROM items").fetchall()
        with runtime.service.connect() as conn:
            conn.execute("INSERT INTO items (name) VALUES ('kept')")
        assert (volume / "app.db-wal").stat().st_size > 0
        snap = take_snapshot(runtime.container, "/data/app.db", tmp_path / "copy", max_size=10**8)
    finally:
        reader.close()

    assert set(snap.files) == {"app.db", "app.db-wal", "app.db-shm"}
    assert snap.companions == companions(wal=True)
    copy = sqlite3.connect(snap.path)
    try:
        assert copy.execute("SELECT name FROM items").fetchall() == [("kept",)]
    finally:
        copy.close()


def test_take_snapshot_of_a_missing_database_says_so(runtime: FakeRuntime, tmp_path: Path) -> None:
    runtime.start()
    with pytest.raises(SnapshotError, match=r"nothing\.db"):
        take_snapshot(runtime.container, "/data/nothing.db", tmp_path / "copy", max_size=10**8)


def test_a_canary_whose_writes_only_read_is_flagged_in_the_cycle_evidence(
    config_dir: Path, runtime: FakeRuntime, tmp_path: Path
) -> None:
    text = (config_dir / "audit.yaml").read_text()
    write = (
        '    - {method: POST, path: /items, port: 8080, json: {name: "{marker}"}, '
        "expect_status: 201}"
    )
    assert write in text
    gets = text.replace(write, "    - {path: /health, port: 8080}")
    gets = gets.replace(
        '"/items?name={marker}", port: 8080, expect_body_contains: "{marker}"',
        "/health, port: 8080",
    )
    (config_dir / "gets.yaml").write_text(gets)
    config = load_config(config_dir / "gets.yaml")
    assert config.canary.changes_nothing
    audit = make_audit(config, runtime, tmp_path)
    assert audit.fresh.blocked is None
    flagged = audit.restart_cycle
    assert not flagged.blocked
    note = [e for e in flagged.actions if e.title == READ_ONLY_WRITES]
    assert len(note) == 1
    assert "proves nothing about user data" in note[0].content
    assert flagged.hollow == "the canary writes change nothing (GET/HEAD only)"


def test_canary_writes_that_store_nothing_are_flagged(
    config_dir: Path, runtime: FakeRuntime, tmp_path: Path
) -> None:
    """A POST answered 201 that stores nothing, read back by a step that checks no body."""
    text = (config_dir / "audit.yaml").read_text()
    read = '"/items?name={marker}", port: 8080, expect_body_contains: "{marker}"'
    assert read in text
    (config_dir / "lax.yaml").write_text(text.replace(read, '"/items?name={marker}", port: 8080'))
    config = load_config(config_dir / "lax.yaml")
    assert not config.canary.changes_nothing
    runtime.service.discard_writes = True
    audit = make_audit(config, runtime, tmp_path)
    assert audit.fresh.blocked is None

    cycle = audit.restart_cycle

    assert cycle.read_back is not None
    assert not cycle.read_back.missing
    assert cycle.hollow.startswith("nothing new was found in the database after the 3 canary")
    assert "/data/app.db (main)" in cycle.hollow
    note = [e for e in cycle.actions if e.title == NOTHING_NEW]
    assert len(note) == 1
    assert "'fresh'" in note[0].content
    assert cycle.before["main"].label == "before-restart-again"  # looked once more, later


def test_a_canary_that_writes_is_not_flagged(
    config: TargetConfig, runtime: FakeRuntime, tmp_path: Path
) -> None:
    audit = make_audit(config, runtime, tmp_path)
    assert audit.fresh.blocked is None
    cycle = audit.restart_cycle
    assert cycle.canaries
    assert READ_ONLY_WRITES not in [e.title for e in cycle.actions]
    assert NOTHING_NEW not in [e.title for e in cycle.actions]
    assert cycle.hollow == ""
    assert cycle.before["main"].label == "before-restart"  # no second look was needed


def test_the_layer_is_listed_beside_a_snapshot_but_never_read_while_it_is_paused(
    config: TargetConfig, runtime: FakeRuntime, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The layer scans run while the fresh and before-recreate copies are taken; the first
    bytes of a candidate are read only once the container is unpaused (an engine can fail to
    freeze a container while a file is read out of it)."""
    reads: list[tuple[str, bool]] = []
    archive, start = FakeHandle.get_archive, FakeRuntime.start

    def get_archive(self: FakeHandle, path: str) -> Any:
        if path in self.layer:
            reads.append((path, self.is_paused))
        elif self.is_paused:
            time.sleep(0.2)  # a slow copy of the database: the scan is ready to read meanwhile
        return archive(self, path)

    def start_with_a_stray_database(self: FakeRuntime) -> float:
        ready = start(self)
        self.container.layer["/srv/cache.db"] = MAGIC + bytes(100)
        return ready

    def changed_files(self: FakeHandle) -> list[str]:
        deadline = time.monotonic() + 2
        while not self.is_paused and time.monotonic() < deadline:
            time.sleep(0.01)  # a slow docker diff: still under way when the pause comes
        return listed(self)

    listed = FakeHandle.changed_files
    monkeypatch.setattr(FakeHandle, "get_archive", get_archive)
    monkeypatch.setattr(FakeHandle, "changed_files", changed_files)
    monkeypatch.setattr(FakeRuntime, "start", start_with_a_stray_database)
    audit = make_audit(config, runtime, tmp_path)

    fresh, cycle = audit.fresh, audit.recreate_cycle

    for scan in (fresh.layer, cycle.layer):
        assert isinstance(scan, LayerScan)
        assert scan.databases == ["/srv/cache.db"]
    assert reads == [("/srv/cache.db", False), ("/srv/cache.db", False)]
    assert fresh.database.facts is not None
    assert cycle.before["main"].facts is not None

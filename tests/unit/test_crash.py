"""The crash stage: the write load (pure threads) and the stage on the Docker-free FakeRuntime
(real SQLite files): acknowledged writes, losses, corruption and hollow writes."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from persistaudit import crash
from persistaudit.audit import TargetAudit
from persistaudit.canary import Canary
from persistaudit.config import TargetConfig, load_config
from persistaudit.exceptions import CanaryError
from tests.unit.fakes import FakeRuntime

# -- the write load ------------------------------------------------------------------------


class Service:
    """Writes that succeed until kill(), then fail as a killed service's would."""

    def __init__(self, refuse: set[int] | None = None, pause: float = 0.001) -> None:
        self.killed = threading.Event()
        self.kills = 0
        self.refuse = refuse or set()
        self.pause = pause

    def kill(self) -> None:
        self.kills += 1
        self.killed.set()

    def open_writer(self) -> Callable[[int], Canary]:
        def write(i: int) -> Canary:
            time.sleep(self.pause)
            if self.killed.is_set():
                raise CanaryError("no HTTP response: connection refused")
            if i in self.refuse:
                raise CanaryError(f"POST /items answered 500 for {i}")
            return Canary(i, f"pa-run-{i:06d}")

        return write


def test_the_load_acknowledges_writes_until_the_kill_and_counts_those_cut_off() -> None:
    service = Service()

    load = crash.drive_load(service.open_writer, 3, range(1, 100_000), 0.2, service.kill)

    assert service.kills == 1
    assert len(load.acknowledged) > 10
    assert [c.i for c in load.acknowledged] == sorted(c.i for c in load.acknowledged)
    assert len({c.i for c in load.acknowledged}) == len(load.acknowledged)  # no number twice
    assert load.unanswered == 3  # each writer's write under way at the kill
    assert load.refusal is None
    assert not load.exhausted
    assert load.stuck == 0


class SlowKill(Service):
    """A kill that takes a while to land, as `docker kill` through the engine's API does."""

    def __init__(self, latency: float) -> None:
        super().__init__()
        self.latency = latency
        self.kill_sent = threading.Event()
        self.started_during_kill = 0

    def kill(self) -> None:
        self.kill_sent.set()
        time.sleep(self.latency)
        super().kill()

    def open_writer(self) -> Callable[[int], Canary]:
        write = super().open_writer()

        def counted(i: int) -> Canary:
            if self.kill_sent.is_set() and not self.killed.is_set():
                self.started_during_kill += 1
            return write(i)

        return counted


def test_the_writers_go_on_writing_until_the_kill_has_landed() -> None:
    """The kill must hit the service in the middle of writes, not after the writers stopped
    when it was sent: a service killed while idle proves nothing about a crash under load."""
    service = SlowKill(latency=0.2)

    load = crash.drive_load(service.open_writer, 2, range(1, 100_000), 0.1, service.kill)

    assert service.started_during_kill > 2
    assert load.unanswered == 2  # each writer's write cut off by the kill
    assert load.refusal is None


def test_a_write_refused_before_the_kill_ends_that_writer_only() -> None:
    service = Service(refuse={3})

    load = crash.drive_load(service.open_writer, 2, range(1, 100_000), 0.2, service.kill)

    assert load.refusal is not None
    assert "answered 500 for 3" in str(load.refusal)
    assert 3 not in {c.i for c in load.acknowledged}
    assert max(c.i for c in load.acknowledged) > 10  # the other writer went on
    assert load.unanswered == 1


def test_a_load_that_runs_out_of_numbers_is_still_killed_on_time() -> None:
    service = Service()
    started = time.monotonic()

    load = crash.drive_load(service.open_writer, 2, range(1, 6), 0.3, service.kill)

    assert time.monotonic() - started >= 0.3
    assert load.exhausted
    assert service.kills == 1
    assert [c.i for c in load.acknowledged] == [1, 2, 3, 4, 5]
    assert load.unanswered == 0


def test_a_session_that_cannot_be_opened_stops_the_load_before_any_kill() -> None:
    service = Service()

    def refuse() -> Callable[[int], Canary]:
        raise CanaryError("opening the session before writing canaries: setup step 1 failed")

    with pytest.raises(CanaryError, match="setup step 1"):
        crash.drive_load(refuse, 2, range(1, 10), 0.1, service.kill)
    assert service.kills == 0


# -- the stage on the fake runtime ------------------------------------------------------------


@pytest.fixture
def config(config_dir: Path) -> TargetConfig:
    text = (config_dir / "audit.yaml").read_text()
    text += "suites:\n  crash: {enabled: true, rounds: 2, kill_after: [0.2, 0.3], seed: 7}\n"
    (config_dir / "crash.yaml").write_text(text)
    return load_config(config_dir / "crash.yaml")


@pytest.fixture
def runtime(config: TargetConfig, tmp_path: Path) -> Any:
    fake = FakeRuntime(config, tmp_path / "volume")
    yield fake
    fake.close()


def run_crash(config: TargetConfig, runtime: FakeRuntime, tmp_path: Path) -> crash.CrashRun:
    workdir = tmp_path / "work"
    workdir.mkdir()
    audit = TargetAudit(config, None, "run1", workdir, lambda _msg: None, runtime=runtime)
    assert audit.fresh.blocked is None
    result = audit.stage("crash")
    assert isinstance(result, crash.CrashRun)
    return result


def test_every_acknowledged_write_of_a_durable_service_is_read_back(
    config: TargetConfig, runtime: FakeRuntime, tmp_path: Path
) -> None:
    result = run_crash(config, runtime, tmp_path)

    assert not result.blocked
    assert not result.hollow
    assert not result.stopped_early
    assert [r.n for r in result.rounds] == [1, 2]
    assert runtime.calls == ["start", "kill SIGKILL", "restart", "kill SIGKILL", "restart"]
    for r in result.rounds:
        assert r.load.acknowledged
        assert r.exit_code == 137
        assert r.ready_s is not None
        assert r.read_back is not None
        assert not r.read_back.missing
        facts = r.after["main"].facts
        assert facts is not None
        assert facts.integrity_ok
        assert 0.2 <= r.kill_at_s <= 0.3
    assert result.acknowledged == sum(len(r.load.acknowledged) for r in result.rounds)
    assert result.lost == []
    # Each round writes numbers of its own, in the crash stage's block.
    first, second = (r.load.acknowledged[0].i for r in result.rounds)
    assert second - first == crash.ROUND_BLOCK


def test_the_seed_fixes_the_kill_points(
    config: TargetConfig, runtime: FakeRuntime, tmp_path: Path
) -> None:
    result = run_crash(config, runtime, tmp_path)
    again = FakeRuntime(config, tmp_path / "volume2")
    try:
        (tmp_path / "2").mkdir()
        other = run_crash(config, again, tmp_path / "2")
    finally:
        again.close()

    assert result.seed == other.seed == 7
    assert [r.kill_at_s for r in result.rounds] == [r.kill_at_s for r in other.rounds]


def test_acknowledged_writes_missing_after_the_restart_are_lost(
    config: TargetConfig, runtime: FakeRuntime, tmp_path: Path
) -> None:
    deleted: list[set[str]] = []  # per round, the names of the rows the "buffer" lost

    def lose_the_last_writes(volume: Path) -> None:  # as a write-behind buffer would
        with sqlite3.connect(volume / "app.db") as conn:
            last = "id > (SELECT max(id) - 5 FROM items)"
            deleted.append({n for (n,) in conn.execute(f"SELECT name FROM items WHERE {last}")})
            conn.execute(f"DELETE FROM items WHERE {last}")
        conn.close()

    runtime.hooks["restart"] = lose_the_last_writes

    result = run_crash(config, runtime, tmp_path)

    # The last five rows stored in each round (two writers: not always the five highest
    # numbers). A row stored by a write the kill cut off before its answer is lost too, but
    # was never acknowledged: only the acknowledged ones count, however the timing fell.
    assert len(deleted) == len(result.rounds) == 2
    lost_by_round = []
    for r, gone in zip(result.rounds, deleted, strict=True):
        assert r.read_back is not None
        acknowledged = {c.marker for c in r.load.acknowledged}
        assert set(r.read_back.missing) <= set(r.load.acknowledged)
        assert {c.marker for c in r.read_back.missing} == gone & acknowledged
        lost_by_round.append(len(r.read_back.missing))
    assert sum(lost_by_round) == len(result.lost) > 0


def test_a_kill_that_leaves_the_database_corrupt_ends_the_rounds(
    config: TargetConfig, runtime: FakeRuntime, tmp_path: Path
) -> None:
    def tear(volume: Path) -> None:  # a half-written transaction with no journal to undo it
        with sqlite3.connect(volume / "app.db") as conn:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        conn.close()
        db = volume / "app.db"
        data = bytearray(db.read_bytes())
        data[4096 + 8 : 4096 + 200] = b"\xff" * 192  # page 2: the items table's first page
        db.write_bytes(bytes(data))
        runtime.service.boot = lambda: None  # type: ignore[method-assign]  # starts regardless

    runtime.hooks["restart"] = tear

    result = run_crash(config, runtime, tmp_path)

    assert [r.n for r in result.rounds] == [1]
    assert result.stopped_early == "round 1 left main corrupt"
    assert crash._corrupt(result.rounds[0].after["main"])


def test_acknowledged_writes_that_reach_no_database_are_hollow(
    config: TargetConfig, runtime: FakeRuntime, tmp_path: Path
) -> None:
    runtime.service.discard_writes = True  # 201, stored nowhere

    result = run_crash(config, runtime, tmp_path)

    assert result.acknowledged > 0
    assert result.hollow.startswith("nothing new was found in any database after")

"""The canary drivers: chosen by the steps' kind, and the exec driver on the fake handle.

The fake's `items` program keeps canaries in a real SQLite file (tests/unit/fakes.py), so a
record read back is one the command really wrote, and a lost file is really lost.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any, cast

import pytest

from persistaudit.canary import Canary
from persistaudit.canary_drivers import DRIVERS, driver_for
from persistaudit.canary_exec import ExecCanary
from persistaudit.canary_http import HttpCanary
from persistaudit.config import TargetConfig, load_config
from persistaudit.exceptions import CanaryError
from tests.helpers import GOOD_CONFIG
from tests.unit.fakes import FakeHandle, FakeRuntime
from tests.unit.test_audit_on_fake import make_audit

SECRET_STDIN = "token=s3cr3t-canary-credential"

EXEC_CANARY = """\
canary:
  records: 3
  write:
    - exec: [items, add, "-"]
      stdin: "{marker}"
      expect_output_contains: "{marker}"
  read:
    - exec: [items, get, "{marker}"]
      expect_output_contains: "{marker}"
      timeout: 5
"""


def exec_config(config_dir: Path, canary: str = EXEC_CANARY) -> TargetConfig:
    head, _, rest = GOOD_CONFIG.partition("canary:\n")
    tail = rest[rest.index("expect:") :]
    path = config_dir / "exec.yaml"
    # No port: ready when the fake's log says it serves (it logs that on every start).
    head = head.replace(
        "  http: {path: /health, port: 8080}\n", "  log: serving on\n  timeout: 5\n"
    )
    assert "log: serving on" in head
    path.write_text(head + canary + tail)
    return load_config(path)


@pytest.fixture
def config(config_dir: Path) -> TargetConfig:
    return exec_config(config_dir)


@pytest.fixture
def runtime(config: TargetConfig, tmp_path: Path) -> Any:
    fake = FakeRuntime(config, tmp_path / "volume")
    yield fake
    fake.close()


def items(volume: Path) -> list[str]:
    conn = sqlite3.connect(volume / "app.db")
    try:
        return [r[0] for r in conn.execute("SELECT name FROM items ORDER BY id")]
    finally:
        conn.close()


def test_the_driver_is_chosen_by_the_kind_of_the_steps(
    config_dir: Path, config: TargetConfig
) -> None:
    assert set(DRIVERS) == {"http", "exec"}
    assert isinstance(driver_for(config.canary), ExecCanary)
    assert isinstance(driver_for(load_config(config_dir / "audit.yaml").canary), HttpCanary)


def test_the_http_driver_describes_its_writes_as_before(config_dir: Path) -> None:
    driver = driver_for(load_config(config_dir / "audit.yaml").canary)
    assert driver.describe([Canary(1, "m1"), Canary(2, "m2")]) == "POST /items x 2"


def test_the_exec_driver_describes_the_command_without_its_stdin(config: TargetConfig) -> None:
    line = driver_for(config.canary).describe([Canary(1, "m1")])
    assert line == "$ items add - < (standard input) x 1"


def test_exec_canaries_are_written_through_stdin_and_read_back(
    config: TargetConfig, runtime: FakeRuntime, tmp_path: Path
) -> None:
    runtime.start()
    driver = driver_for(config.canary)

    written = driver.write(runtime.container, "run1", 4)

    assert [c.marker for c in written] == ["pa-run1-000004", "pa-run1-000005", "pa-run1-000006"]
    assert items(tmp_path / "volume") == [c.marker for c in written]
    assert runtime.container.execs[0] == (["items", "add", "-"], b"pa-run1-000004")
    back = driver.read(runtime.container, "run1", written)
    assert back.found == written
    assert not back.missing
    assert runtime.container.execs[-1] == (["items", "get", "pa-run1-000006"], None)


def test_a_record_the_command_does_not_find_is_missing_with_the_reason(
    config: TargetConfig, runtime: FakeRuntime, tmp_path: Path
) -> None:
    runtime.start()
    driver = driver_for(config.canary)
    written = driver.write(runtime.container, "run1", 1)
    with sqlite3.connect(tmp_path / "volume" / "app.db") as conn:
        conn.execute("DELETE FROM items WHERE name = 'pa-run1-000002'")
    conn.close()

    back = driver.read(runtime.container, "run1", written)

    assert [c.i for c in back.found] == [1, 3]
    assert [c.i for c in back.missing] == [2]
    assert back.first_failure == "items get pa-run1-000002 exited 1, expected 0: "


def test_output_without_the_expected_text_is_a_missing_record(
    config_dir: Path, tmp_path: Path
) -> None:
    canary = EXEC_CANARY.replace(
        '    - exec: [items, get, "{marker}"]\n      expect_output_contains: "{marker}"',
        '    - exec: [items, get, "{marker}"]\n      expect_output_contains: "kept {marker}"',
    )
    config = exec_config(config_dir, canary)
    runtime = FakeRuntime(config, tmp_path / "volume")
    try:
        runtime.start()
        driver = driver_for(config.canary)
        back = driver.read(runtime.container, "r", driver.write(runtime.container, "r", 1))
    finally:
        runtime.close()
    assert len(back.missing) == 3
    assert back.first_failure.startswith(
        'items get pa-r-000001 answered without \'kept pa-r-000001\': {"name": "pa-r-000001"}'
    )


def test_a_refused_write_raises_with_the_command_line_and_the_answer_but_not_stdin(
    config_dir: Path, runtime: FakeRuntime
) -> None:
    config = exec_config(
        config_dir, EXEC_CANARY.replace('"{marker}"\n', f'"{SECRET_STDIN} {{marker}}"\n', 1)
    )
    runtime.start()
    runtime.service.refuse_adds = "database or disk is full"

    with pytest.raises(CanaryError) as info:
        driver_for(config.canary).write(runtime.container, "run1", 1)

    error = info.value
    assert str(error) == (
        "writing canary pa-run1-000001 failed after 0 of 3 were written: items add - exited 75, "
        "expected 0: refusing write: database or disk is full"
    )
    stdin_size = len(f"{SECRET_STDIN} pa-run1-000001")
    assert error.request == (
        f"$ items add - < (standard input: {stdin_size} bytes, not shown)\n# expecting exit 0"
    )
    assert error.response == "exit 75\nrefusing write: database or disk is full\n"
    assert SECRET_STDIN not in error.request + error.response + str(error)


def test_a_step_past_its_timeout_is_a_failed_step(config: TargetConfig, tmp_path: Path) -> None:
    handle = FakeHandle("slow", tmp_path, "/data")

    def hangs(argv: list[str], stdin: bytes | None) -> tuple[int, str]:
        time.sleep(0.05)  # as the handle answers a command still running at its timeout
        return 124, "still running after 0.05 s"

    handle.programs["items"] = hangs
    step = config.canary.write[0].model_copy(update={"timeout": 0.05})
    fast = config.canary.model_copy(update={"write": [step]})

    with pytest.raises(CanaryError) as info:
        driver_for(fast).write(cast(Any, handle), "r", 1)
    assert "items add - did not finish within its timeout of 0.05 s" in str(info.value)


def test_an_exec_canary_audit_retains_every_record_across_a_restart(
    config: TargetConfig, runtime: FakeRuntime, tmp_path: Path
) -> None:
    audit = make_audit(config, runtime, tmp_path)
    assert audit.fresh.blocked is None

    cycle = audit.restart_cycle

    assert not cycle.blocked
    assert cycle.read_back is not None
    assert len(cycle.read_back.found) == 3
    assert cycle.retention["main"].complete
    assert cycle.actions[0].content.startswith(
        "$ items add - < (standard input) x 3 "
        "(markers pa-run1-100001 .. pa-run1-100003; this cycle's own)"
    )


def test_an_exec_canary_audit_finds_records_lost_on_recreate(
    config: TargetConfig, runtime: FakeRuntime, tmp_path: Path
) -> None:
    def lose(folder: Path) -> None:
        for name in ("app.db", "app.db-wal", "app.db-shm"):
            (folder / name).unlink(missing_ok=True)

    runtime.hooks["recreate"] = lose
    audit = make_audit(config, runtime, tmp_path)
    assert audit.fresh.blocked is None

    cycle = audit.recreate_cycle

    assert not cycle.blocked
    assert cycle.read_back is not None
    assert len(cycle.read_back.missing) == 3
    assert "exited 1, expected 0" in cycle.read_back.first_failure


def test_a_refused_exec_write_blocks_the_cycle_with_request_and_response_evidence(
    config: TargetConfig, runtime: FakeRuntime, tmp_path: Path
) -> None:
    audit = make_audit(config, runtime, tmp_path)
    assert audit.fresh.blocked is None
    runtime.service.refuse_adds = "memory quota of 0 reached"

    cycle = audit.restart_cycle

    assert cycle.blocked.startswith("the restart cycle could not be exercised: writing canary")
    assert runtime.calls == ["start"]  # nothing was restarted
    evidence = {e.title: e.content for e in cycle.evidence}
    assert evidence["Canary write request"].startswith("$ items add - < (standard input: ")
    assert evidence["Response"] == "exit 75\nrefusing write: memory quota of 0 reached\n"

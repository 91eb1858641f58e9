"""A hostile or broken target on a real engine: the audit ends, within its limits, with the
container unpaused and a verdict that claims nothing it did not check."""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import docker
import pytest

from persistaudit import engine as engine_module
from persistaudit import host_copy
from persistaudit.config import load_config
from persistaudit.exceptions import SnapshotError
from persistaudit.runtime import ImageRuntime
from persistaudit.snapshot import take_snapshot
from tests.e2e.conftest import Audit, config_variant, leftovers
from tests.helpers import NOTES_APP

pytestmark = pytest.mark.docker

FRESH_NEEDING_THE_SNAPSHOT = [
    "fresh_install.schema",
    "fresh_install.constraints",
    "fresh_install.integrity",
    "fresh_install.foreign_keys",
    "fresh_install.journal_mode",
]


def test_a_copy_that_fails_midway_leaves_the_container_running(
    engine: docker.DockerClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PERSISTAUDIT_COPY_FROM_ENGINE", "1")  # the engine's stream breaks
    config = load_config(NOTES_APP / "audit.yaml")
    runtime = ImageRuntime(config, engine, engine_module.new_run_id())
    try:
        runtime.start()
        container = runtime.container
        real = container.get_archive

        def breaks_midway(path: str) -> Iterator[bytes] | None:
            stream = real(path)
            if stream is None:
                return None

            def chunks() -> Iterator[bytes]:
                yield next(stream)[:1536]  # the tar header and the start of the file
                assert container.state().status == "paused"
                raise ConnectionResetError("the engine went away")

            return chunks()

        container.get_archive = breaks_midway  # type: ignore[method-assign]
        with pytest.raises(SnapshotError, match="the engine's stream broke: ConnectionReset"):
            take_snapshot(container, config.database.path, tmp_path / "a", max_size=2**30)
        assert container.state().status == "running"
        assert list((tmp_path / "a").iterdir()) == []  # no half snapshot left behind

        container.get_archive = real  # type: ignore[method-assign]
        snap = take_snapshot(container, config.database.path, tmp_path / "b", max_size=2**30)
        assert snap.path.stat().st_size > 0  # and the next copy works
    finally:
        runtime.close()
    assert leftovers(engine, os.getpid()) == []


def test_a_kernel_copy_that_fails_midway_leaves_the_container_running(
    engine: docker.DockerClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The host's route (host_copy.copy_to): a write that fails halfway, as on a full disk."""
    config = load_config(NOTES_APP / "audit.yaml")
    runtime = ImageRuntime(config, engine, engine_module.new_run_id())
    try:
        runtime.start()
        container = runtime.container
        if container.host_file(config.database.path) is None:
            pytest.skip("the engine is not local here, or maps user ids")
        real = host_copy.copy_to

        def fails_midway(fd: int, info: os.stat_result, target: Path) -> int:
            os.close(fd)
            target.write_bytes(b"SQLite format 3\0" + bytes(1000))
            assert container.state().status == "paused"
            raise OSError(28, "No space left on device")

        monkeypatch.setattr(host_copy, "copy_to", fails_midway)
        with pytest.raises(SnapshotError, match=r"the copy failed writing to .*No space left"):
            take_snapshot(container, config.database.path, tmp_path / "a", max_size=2**30)
        assert container.state().status == "running"
        assert list((tmp_path / "a").iterdir()) == []  # no half snapshot left behind

        monkeypatch.setattr(host_copy, "copy_to", real)
        snap = take_snapshot(container, config.database.path, tmp_path / "b", max_size=2**30)
        assert snap.path.stat().st_size > 0  # and the next copy works
        assert snap.fingerprint
    finally:
        runtime.close()
    assert leftovers(engine, os.getpid()) == []


def test_a_database_over_max_size_is_blocked_naming_its_size(
    run_audit: Callable[..., Audit], tmp_path: Path
) -> None:
    config = config_variant(
        tmp_path,
        NOTES_APP / "audit.yaml",
        "small",
        database={"path": "/data/notes.db", "max_size": "1KiB"},
    )
    audit = run_audit(config)
    assert audit.code == 3, audit.stderr  # BLOCKED, not FAIL
    statuses = audit.statuses()
    assert {c: statuses[c] for c in FRESH_NEEDING_THE_SNAPSHOT} == dict.fromkeys(
        FRESH_NEEDING_THE_SNAPSHOT, "blocked"
    )
    assert statuses["fresh_install.startup"] == "passed"
    assert statuses["volume.mount"] == "passed"
    assert statuses["restart.retention"] == statuses["recreate.retention"] == "blocked"
    summary = audit.check("fresh_install.integrity")["summary"]
    assert re.fullmatch(
        r"the database could not be examined: /data/notes.db in container persistaudit-\S+ is"
        r" \d+\.\d KiB, over the limit of 1\.0 KiB \(database\.max_size\)\. Hint: raise .*",
        summary,
    ), summary


def test_a_readiness_command_that_never_ends_is_blocked_on_time(
    run_audit: Callable[..., Audit], tmp_path: Path
) -> None:
    config = config_variant(
        tmp_path,
        NOTES_APP / "audit.yaml",
        "sleeper",
        readiness={"command": ["sleep", "600"], "timeout": 3},
    )
    started = time.monotonic()
    audit = run_audit(config, "-k", "startup")
    assert time.monotonic() - started < 45
    assert audit.code == 3, audit.stderr
    startup = audit.check("fresh_install.startup")
    assert "not ready after 3 s (waiting for command sleep 600 exits 0" in startup["summary"]


def test_a_hostile_schema_cannot_hang_the_audit(run_audit: Callable[..., Audit]) -> None:
    """A view and a trigger that never end: the probes they stop are not a verdict, the rest
    of the audit runs, and the schema check names them."""
    started = time.monotonic()
    audit = run_audit(str(NOTES_APP / "defects" / "hostile-schema.yaml"))
    assert time.monotonic() - started < 120
    assert audit.code == 1, audit.stderr
    statuses = audit.statuses()
    assert statuses.pop("fresh_install.schema") == "failed"
    assert statuses.pop("fresh_install.constraints") == "blocked"
    assert set(statuses.values()) == {"passed"}
    schema = audit.check("fresh_install.schema")["summary"]
    assert "unexpected view row_numbers; unexpected trigger audit_log_check" in schema
    constraints = audit.check("fresh_install.constraints")["summary"]
    assert constraints == (
        "1 of 17 probes stopped by a limit: audit_log: CHECK(action in ('create', 'update',"
        " 'delete')): timed out after 2 s (database.query_timeout)"
    )

"""The stage registry: a stage runs once, on first use, also when it raised; a team registers
its own."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest
from docker.errors import DockerException

from persistaudit import stages
from persistaudit.audit import Cycle, TargetAudit
from persistaudit.collector import CheckRecorder, ResultCollector
from persistaudit.config import load_config
from persistaudit.exceptions import StageError
from persistaudit.progress import Progress
from persistaudit.redact import Redactor
from tests.unit.fakes import FakeRuntime


@pytest.fixture
def audit(config_dir: Path, tmp_path: Path) -> Iterator[TargetAudit]:
    config = load_config(config_dir / "audit.yaml")
    runtime = FakeRuntime(config, tmp_path / "volume")
    workdir = tmp_path / "work"
    workdir.mkdir()
    yield TargetAudit(config, None, "run1", workdir, lambda _msg: None, runtime=runtime)
    runtime.close()


@pytest.fixture
def team_stage() -> Iterator[str]:
    yield "team_backup"
    stages.unregister("team_backup")


def test_the_bundled_stages_have_fixed_disjoint_canary_blocks() -> None:
    assert stages.names()[:3] == ["fresh", "restart", "recreate"]
    starts = [stages.get(name).canary_start for name in ("fresh", "restart", "recreate")]
    assert starts == [1, stages.CANARY_BLOCK + 1, 2 * stages.CANARY_BLOCK + 1]


def test_a_teams_stage_runs_once_on_first_use(audit: TargetAudit, team_stage: str) -> None:
    runs: list[str] = []

    def backup(target: TargetAudit) -> str:
        runs.append(target.run_id)
        return "backed up"

    registered = stages.register(team_stage, backup)

    assert runs == []
    assert audit.stage(team_stage) == "backed up"
    assert audit.stage(team_stage) == "backed up"
    assert runs == ["run1"]
    assert registered.index >= len(stages.BUNDLED)  # after the bundled stages' blocks


def test_a_teams_cycle_writes_canaries_from_its_own_block(
    audit: TargetAudit, team_stage: str
) -> None:
    def again(target: TargetAudit) -> Cycle:
        return target.cycle(team_stage, target.runtime.restart, "docker restart {name}")

    stage = stages.register(team_stage, again)
    assert audit.fresh.blocked is None

    cycle = audit.stage(team_stage)

    assert isinstance(cycle, Cycle)
    assert not cycle.failure
    assert not cycle.blocked
    assert [c.i for c in cycle.canaries] == [stage.canary_start + n for n in range(3)]
    assert cycle.read_back is not None
    assert not cycle.read_back.missing


def test_registering_again_replaces_the_function_and_keeps_the_block(team_stage: str) -> None:
    first = stages.register(team_stage, lambda _audit: 1)
    second = stages.register(team_stage, lambda _audit: 2)
    assert second.index == first.index
    assert second.run(cast(Any, None)) == 2


def test_an_unknown_stage_names_the_known_ones(audit: TargetAudit) -> None:
    with pytest.raises(StageError, match=r"no stage named 'soak'.*fresh, restart, recreate"):
        audit.stage("soak")


def test_a_stage_that_asks_for_itself_is_refused(audit: TargetAudit, team_stage: str) -> None:
    stages.register(team_stage, lambda target: target.stage(team_stage))
    with pytest.raises(StageError, match="asks for itself"):
        audit.stage(team_stage)


def test_a_stage_in_place_of_a_bundled_one_must_return_its_kind(
    audit: TargetAudit, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(stages._stages, "restart", stages.Stage("restart", lambda _a: 3, 1))
    with pytest.raises(StageError, match="returned a int, not a Cycle"):
        _ = audit.restart_cycle


@pytest.mark.parametrize("name", ["", "Backup", "1st", "back-up"])
def test_stage_names_are_identifiers(name: str) -> None:
    with pytest.raises(StageError, match="not of the form"):
        stages.register(name, lambda _audit: None)


def test_a_stage_that_raised_is_not_run_again(audit: TargetAudit, team_stage: str) -> None:
    runs: list[int] = []

    def broken(_target: TargetAudit) -> None:
        runs.append(1)
        raise OSError("no space left on device")

    stages.register(team_stage, broken)
    raised, depths = [], []
    for _ in range(3):
        with pytest.raises(OSError, match="no space left") as excinfo:
            audit.stage(team_stage)
        raised.append(excinfo.value)
        depths.append(len(excinfo.traceback))
        assert excinfo.traceback[-1].name == "broken"  # where it was raised

    assert runs == [1]
    assert raised[0] is raised[1] is raised[2]
    assert depths[1] == depths[2]  # its traceback is not grown by each ask
    # All three are the same object: the first ask's check sees it "raised again" too once
    # a later check asked; the collector asks when a check ends, before the next one runs.
    assert [audit.raised_again(exc) for exc in raised] == [True] * 3
    assert not audit.raised_again(OSError("another"))


def test_a_fresh_install_the_engine_failed_starts_no_second_container(
    config_dir: Path, tmp_path: Path
) -> None:
    config = load_config(config_dir / "audit.yaml")
    runtime = FakeRuntime(config, tmp_path / "volume")

    def refused(_volume: Path) -> None:
        raise DockerException("ChannelException(1, 'Administratively prohibited')")

    runtime.hooks["start"] = refused
    workdir = tmp_path / "work"
    workdir.mkdir()
    audit = TargetAudit(config, None, "run1", workdir, lambda _msg: None, runtime=runtime)
    try:
        for _ in range(3):
            with pytest.raises(DockerException, match="Administratively prohibited"):
                _ = audit.fresh
        assert runtime.calls == ["start"]
    finally:
        runtime.close()


def test_a_check_stopped_by_an_error_raised_again_waits_for_no_removal(
    audit: TargetAudit, team_stage: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first check waits for a removal to show (REMOVAL_SETTLE_S); the next ones, stopped
    by the same error, do not wait again."""

    def refused(_target: TargetAudit) -> None:
        raise DockerException("the engine refused the connection")

    stages.register(team_stage, refused)
    settles: list[bool] = []
    monkeypatch.setattr(audit, "removed", lambda _during, *, settle: settles.append(settle))
    redactor = Redactor({})
    results = ResultCollector(
        audit.config,
        Progress(redactor, writer=lambda emit: None),
        redactor,
        from_file=True,
        order=[],
        started_at="2026-01-01T00:00:00+00:00",
    )
    outcomes = []
    for check_id in ("fresh_install.schema", "restart.retention"):
        with pytest.raises(DockerException) as excinfo:
            audit.stage(team_stage)
        outcomes.append(results.outcome(CheckRecorder(check_id), excinfo, audit))

    assert settles == [True, False]
    assert [status for status, _summary in outcomes] == ["blocked", "blocked"]
    assert outcomes[0][1] == outcomes[1][1]

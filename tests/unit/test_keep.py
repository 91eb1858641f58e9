"""--keep: what a kept run records, and `clean` leaving kept runs alone unless asked (a stub
engine, no Docker)."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from persistaudit import cleanup, cli, engine, keep
from persistaudit.cleanup import Removal, Resource

DEAD_PID = "4194000"  # above any pid this machine hands out: the owner has ended


def labels(run: str) -> dict[str, str]:
    return {
        engine.LABEL_MANAGED: "true",
        engine.LABEL_RUN: run,
        engine.LABEL_TARGET: "demo",
        engine.LABEL_OWNER_HOST: socket.gethostname(),
        engine.LABEL_OWNER_PID: DEAD_PID,
        engine.LABEL_OWNER_STARTED: "1",
    }


class Api:
    """Two ended runs on the engine: aaaa1111 (kept) and bbbb2222."""

    def containers(self, **_: Any) -> list[dict[str, Any]]:
        return [
            {"Id": f"c{run}", "Names": [f"/persistaudit-demo-{run}-1"], "Labels": labels(run)}
            for run in ("aaaa1111", "bbbb2222")
        ]

    def volumes(self, **_: Any) -> dict[str, Any]:
        return {
            "Volumes": [
                {"Name": f"persistaudit-demo-{run}", "Labels": labels(run)}
                for run in ("aaaa1111", "bbbb2222")
            ]
        }

    def networks(self, **_: Any) -> list[dict[str, Any]]:
        return []


class Client:
    api = Api()


@pytest.fixture(autouse=True)
def state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    return tmp_path / "state" / "persistaudit" / "kept"


@pytest.fixture
def removed(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    runs: list[str] = []

    def remove_run(run_id: str, prefix: str, **_: Any) -> Removal:
        runs.append(run_id)
        return Removal(removed=[f"container {prefix}-1", f"volume {prefix}"])

    monkeypatch.setattr(engine, "connect", lambda: Client())
    monkeypatch.setattr(cleanup, "remove_run", remove_run)
    monkeypatch.setattr(cleanup, "remove_scratch", lambda prefix: [])
    return runs


def resources(run: str) -> list[Resource]:
    return [
        Resource("container", f"persistaudit-demo-{run}-1", "c", labels(run)),
        Resource("volume", f"persistaudit-demo-{run}", f"persistaudit-demo-{run}", labels(run)),
    ]


def test_a_kept_run_says_exactly_how_to_remove_it(state: Path) -> None:
    kept = keep.record("aaaa1111", "demo", resources("aaaa1111"))
    assert kept.remove_commands() == [
        "persistaudit clean --run aaaa1111",
        "docker rm -f persistaudit-demo-aaaa1111-1",
        "docker volume rm persistaudit-demo-aaaa1111",
    ]
    assert (state / "aaaa1111.json").is_file()
    assert keep.kept_runs() == {"aaaa1111": kept}
    assert kept in keep.kept_here()
    keep.forget("aaaa1111")
    assert keep.kept_runs() == {}


def test_a_damaged_record_is_ignored(state: Path) -> None:
    state.mkdir(parents=True)
    (state / "aaaa1111.json").write_text("{not json")
    (state / "../../x.json").write_text("{}")
    assert keep.kept_runs() == {}


def test_clean_leaves_a_kept_run_and_removes_the_ended_one(removed: list[str]) -> None:
    keep.record("aaaa1111", "demo", resources("aaaa1111"))
    result = CliRunner().invoke(cli.main, ["clean"])
    assert result.exit_code == 0, result.output
    assert removed == ["bbbb2222"]
    assert "left container persistaudit-demo-aaaa1111-1: kept with --keep at " in result.output
    assert "`persistaudit clean --run aaaa1111` removes it" in result.output
    assert "aaaa1111" in keep.kept_runs()


def test_clean_run_removes_the_kept_run_and_forgets_it(removed: list[str]) -> None:
    keep.record("aaaa1111", "demo", resources("aaaa1111"))
    result = CliRunner().invoke(cli.main, ["clean", "--run", "aaaa1111"])
    assert result.exit_code == 0, result.output
    assert removed == ["aaaa1111"]
    assert "removed volume persistaudit-demo-aaaa1111 (--run aaaa1111)" in result.output
    assert keep.kept_runs() == {}


def test_a_record_whose_run_was_removed_by_hand_is_forgotten(removed: list[str]) -> None:
    keep.record("cccc3333", "demo", resources("cccc3333"))  # not on the engine any more
    CliRunner().invoke(cli.main, ["clean"])
    assert "cccc3333" not in keep.kept_runs()


def test_a_record_that_cannot_be_written_still_counts_as_kept_here(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "file").write_text("")
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "file"))  # a file, not a folder
    with pytest.raises(NotADirectoryError):
        keep.record("dddd4444", "demo", resources("dddd4444"))
    assert keep.kept_here()[-1].run == "dddd4444"

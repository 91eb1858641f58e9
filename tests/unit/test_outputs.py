"""The output folder: whole sets only, and one run at a time."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from persistaudit.cli import main
from persistaudit.exceptions import OutputBusy
from persistaudit.outputs import hold, write_outputs
from persistaudit.redact import Redactor
from tests.unit.test_report import results

NO_SECRETS = Redactor({})


def contents(folder: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
    }


def test_a_new_run_replaces_the_whole_previous_set(tmp_path: Path) -> None:
    out = tmp_path / "out"
    write_outputs(out, results(verdict="FAIL"), {"old.log": "old\n"}, NO_SECRETS)
    write_outputs(out, results(), {"startup.log": "new\n"}, NO_SECRETS)
    assert sorted(contents(out)) == [
        "evidence/startup.log",
        "junit.xml",
        "report.md",
        "results.json",
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no staging left beside it


def test_an_interrupt_while_writing_leaves_the_previous_set_untouched(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "out"
    write_outputs(out, results(verdict="FAIL"), {"startup.log": "old\n"}, NO_SECRETS)
    before = contents(out)

    def interrupted(_doc: object) -> str:
        raise KeyboardInterrupt  # a Ctrl-C while the last file is being rendered

    monkeypatch.setattr("persistaudit.outputs.render_junit", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_outputs(out, results(), {"startup.log": "new\n", "extra.log": "new\n"}, NO_SECRETS)
    assert contents(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_an_interrupted_first_run_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "reports" / "out"

    def interrupted(_doc: object) -> str:
        raise KeyboardInterrupt

    monkeypatch.setattr("persistaudit.outputs.render_markdown", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_outputs(out, results(), {}, NO_SECRETS)
    assert not out.exists()
    assert list((tmp_path / "reports").iterdir()) == []


@pytest.fixture
def held_elsewhere(tmp_path: Path) -> Iterator[Path]:
    """An output folder held by another process, as by a second audit running into it."""
    out = tmp_path / "out"
    code = (
        "import sys, time\nfrom pathlib import Path\nfrom persistaudit.outputs import hold\n"
        "with hold(Path(sys.argv[1])):\n    print('held', flush=True)\n    time.sleep(120)\n"
    )
    with subprocess.Popen(
        [sys.executable, "-c", code, str(out)], stdout=subprocess.PIPE, text=True
    ) as holder:
        assert holder.stdout is not None
        assert holder.stdout.readline() == "held\n"
        try:
            yield out
        finally:
            holder.kill()  # the kernel releases its lock: no stale lock file to remove


def test_a_second_run_into_the_same_folder_refuses_with_one_line(
    held_elsewhere: Path, config_dir: Path
) -> None:
    with pytest.raises(OutputBusy, match="another persistaudit run is writing to this folder"):
        write_outputs(held_elsewhere, results(), {}, NO_SECRETS)
    result = CliRunner().invoke(
        main, ["run", str(config_dir / "audit.yaml"), "--out", str(held_elsewhere)]
    )
    assert result.exit_code == 2, result.output
    assert result.output.count("\n") == 1
    assert result.output.startswith(f"persistaudit: error: {held_elsewhere}: another persistaudit")


def test_the_pytest_route_refuses_a_held_folder_too(held_elsewhere: Path, config_dir: Path) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            f"--persistaudit-config={config_dir / 'audit.yaml'}",
            f"--persistaudit-out={held_elsewhere}",
            str(config_dir),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 4, proc.stdout + proc.stderr
    assert "another persistaudit run is writing to this folder" in proc.stderr


def test_a_killed_holder_neither_blocks_nor_leaves_its_staging_behind(tmp_path: Path) -> None:
    out = tmp_path / "out"
    code = (
        "import os, sys\nfrom pathlib import Path\nfrom persistaudit.outputs import hold\n"
        "with hold(Path(sys.argv[1])):\n    os._exit(9)\n"
    )
    subprocess.run([sys.executable, "-c", code, str(out)], check=False)
    assert len(list(tmp_path.glob(".out.partial-*"))) == 1
    with hold(out):
        pass
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]

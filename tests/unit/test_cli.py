from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from persistaudit.cli import main
from tests.helpers import GOOD_CONFIG, REPO


def run(*args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args), env=env)
    return result.exit_code, result.output


def test_bad_config_is_one_line_and_exit_2(config_dir: Path) -> None:
    (config_dir / "audit.yaml").write_text(GOOD_CONFIG.replace("  mount: /data\n", "  mount: 7\n"))
    code, out = run("run", str(config_dir / "audit.yaml"))
    assert code == 2
    assert out.strip().count("\n") == 0
    assert re.search(r"audit.yaml:\d+: volume.mount: Input should be a valid string", out)
    assert "Traceback" not in out


def test_missing_config_file(tmp_path: Path) -> None:
    code, out = run("run", str(tmp_path / "absent.yaml"))
    assert code == 2
    assert "absent.yaml: file not found" in out


def test_engine_that_does_not_answer_is_exit_2(config_dir: Path, tmp_path: Path) -> None:
    code, out = run(
        "run",
        str(config_dir / "audit.yaml"),
        env={"DOCKER_HOST": f"unix://{tmp_path}/no-such.sock"},
    )
    assert code == 2
    assert out.startswith(
        f"persistaudit: error: no Docker engine answers at unix://{tmp_path}/no-such.sock "
        "(DOCKER_HOST): no socket there. Hint: "
    )
    assert "make" not in out  # an installed package has no Makefile
    assert out.strip().count("\n") == 0


def test_report_rerenders_from_results(tmp_path: Path) -> None:
    from tests.unit.test_report import results

    source = tmp_path / "results.json"
    source.write_text(json.dumps(results()))
    code, _ = run("report", str(source), "-o", str(tmp_path / "a.md"))
    assert code == 0
    run("report", str(source), "-o", str(tmp_path / "b.md"))
    assert (tmp_path / "a.md").read_bytes() == (tmp_path / "b.md").read_bytes()
    source.write_text("{not json")
    code, out = run("report", str(source), "-o", str(tmp_path / "c.md"))
    assert code == 2
    assert "results.json: not valid JSON: " in out


@pytest.mark.parametrize("command", sorted(main.commands))  # type: ignore[attr-defined]
def test_every_command_is_documented_in_the_readme(command: str) -> None:
    assert f"persistaudit {command}" in (REPO / "README.md").read_text()


def readme_section(command: str) -> str:
    """The README's section of a command: from its heading to the next one of its level."""
    text = (REPO / "README.md").read_text()
    start = text.index(f"### `persistaudit {command}")
    ends = [i for i in (text.find("\n### ", start + 1), text.find("\n## ", start)) if i > 0]
    return text[start : min(ends)]


OPTIONS = [
    (name, param.opts)
    for name, command in sorted(main.commands.items())  # type: ignore[attr-defined]
    for param in command.params
    if isinstance(param, click.Option)
]


@pytest.mark.parametrize(("command", "names"), OPTIONS, ids=[f"{c}-{n[-1]}" for c, n in OPTIONS])
def test_every_option_is_documented_in_its_commands_section(command: str, names: list[str]) -> None:
    section = readme_section(command)
    assert any(f"`{n}" in section or f" {n} " in section or f"[{n}" in section for n in names)


def test_the_option_check_reads_the_section_only() -> None:
    assert "--from-sql" in readme_section("snapshot")
    assert "--from-sql" not in readme_section("run")


def test_a_bug_in_a_command_is_exit_4_never_1(
    make_db: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Exit 1 means FAIL, or drift for `diff`: a bug of persistaudit's must not read as one."""
    from persistaudit import sqltext

    db = make_db("CREATE TABLE t (a TEXT COLLATE NOCASE, b INTEGER);")
    # Our CREATE TABLE parser disagreeing with SQLite's own reading is our bug, not the file's.
    monkeypatch.setattr(sqltext, "column_collations", lambda sql: ["NOCASE"])
    runner = CliRunner()
    result = runner.invoke(main, ["snapshot", str(db)])
    assert result.exit_code == 4, result.output
    last = result.output.strip().splitlines()[-1]
    assert last.startswith("persistaudit: internal error: RuntimeError: table 't'")
    assert "a bug in persistaudit, not a finding" in last

"""The light commands never import pytest, docker, testcontainers, requests or pydantic.

Those imports cost most of a second (pydantic alone 0.15 s of the 0.2 s a light command may
take, hence a msgspec manifest model); `diff`, `snapshot FILE`, `report`, `verify` and
`--help` need none of them. Each command runs in a fresh interpreter through the real entry point,
which then lists what got imported.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from persistaudit.cli import main
from tests.helpers import REPO

HEAVY = {"pytest", "_pytest", "docker", "testcontainers", "requests", "pydantic"}

PROBE = """\
import json, os, sys
from persistaudit.__main__ import main
code = 0
try:
    main()
except SystemExit as exc:
    code = exc.code if isinstance(exc.code, int) else 1
with open(os.environ["PROBE_OUT"], "w") as fh:
    json.dump({"code": code, "modules": sorted(sys.modules)}, fh)
"""


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small database, its manifest, a results.json and a signed report folder."""
    folder = tmp_path_factory.mktemp("light")
    conn = sqlite3.connect(folder / "small.db")
    conn.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, title TEXT NOT NULL)")
    conn.commit()
    conn.close()
    cli = CliRunner()
    result = cli.invoke(
        main, ["snapshot", str(folder / "small.db"), "-o", str(folder / "small.yaml")]
    )
    assert result.exit_code == 0, result.output
    signed = folder / "signed"
    signed.mkdir()
    shutil.copy(REPO / "tests" / "golden" / "pass.results.json", signed / "results.json")
    for args in (
        ["report", str(signed / "results.json"), "-o", str(signed / "report.md")],
        ["keygen", str(folder / "key")],
        ["sign", str(signed), "--key", str(folder / "key"), "--auditor", "A", "--role", "R"],
    ):
        result = cli.invoke(main, args)
        assert result.exit_code == 0, result.output
    return folder


def imported(folder: Path, *args: str) -> tuple[int, set[str]]:
    """The exit code of `persistaudit ARGS` and the top-level packages it imported."""
    out = folder / "probe.json"
    env = {**os.environ, "PROBE_OUT": str(out)}
    subprocess.run(
        [sys.executable, "-c", PROBE, *args], cwd=folder, env=env, capture_output=True, check=True
    )
    doc = json.loads(out.read_text())
    return doc["code"], {m.split(".")[0] for m in doc["modules"]}


@pytest.mark.parametrize(
    "args",
    [
        ["--help"],
        ["diff", "small.yaml", "small.db"],
        ["diff", "small.yaml", "small.yaml", "--json"],
        ["snapshot", "small.db"],
        ["report", "signed/results.json", "-o", "again.md"],
        ["report", "signed/results.json", "-o", "again.html", "--format", "html"],
        ["verify", "signed", "--pubkey", "key.pub"],
    ],
    ids=" ".join,
)
def test_a_light_command_imports_nothing_heavy(inputs: Path, args: list[str]) -> None:
    code, modules = imported(inputs, *args)
    assert code == 0  # it did its work: an early error would prove nothing
    assert modules & HEAVY == set()


def test_the_probe_sees_what_run_imports(inputs: Path) -> None:
    """`run` needs pytest; a probe that could not see it would pass whatever cli.py imports."""
    code, modules = imported(inputs, "run", "absent.yaml")
    assert code == 2
    assert "pytest" in modules

"""The check catalog: one entry per check, and every output derived from it."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from persistaudit import catalog
from persistaudit.catalog import Check, Gap, Suite
from persistaudit.config import load_config
from persistaudit.exceptions import CatalogError, ConfigError
from persistaudit.junit import render_junit
from persistaudit.report import render_markdown
from tests.helpers import GOOD_CONFIG, REPO
from tests.unit.test_report import results


def marked_check_ids(folder: Path) -> list[str]:
    """The ids of every @pytest.mark.check("...") in the suites' source, in file order."""
    found = []
    for path in sorted(folder.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not isinstance(node, ast.FunctionDef):
                continue
            for mark in node.decorator_list:
                if (
                    isinstance(mark, ast.Call)
                    and ast.unparse(mark.func) == "pytest.mark.check"
                    and isinstance(mark.args[0], ast.Constant)
                ):
                    found.append(str(mark.args[0].value))
    return found


def test_every_suite_check_has_an_entry_and_every_entry_a_check() -> None:
    marked = marked_check_ids(REPO / "suites")
    assert len(marked) == len(set(marked)), "a check id is used by two tests"
    assert sorted(marked) == sorted(catalog.ids())


def test_suites_run_in_catalog_order() -> None:
    for path in (REPO / "suites").glob("test_*.py"):
        in_file = [i for i in marked_check_ids(REPO / "suites") if i.startswith(path.stem[5:])]
        assert sorted(in_file, key=catalog.rank) == in_file, f"{path.name} is out of order"
    assert [c.suite for c in catalog.checks()][:1] == ["fresh_install"]
    ids = catalog.ids()
    assert ids[ids.index("restart.retention") : ids.index("recreate.retention") + 1] == [
        "restart.retention",
        "restart.graceful_stop",
        "restart.idempotent_init",
        "recreate.retention",
    ]
    assert ids.index("recreate.retention") < ids.index("backup.integrity")
    assert ids.index("backup.integrity") + 1 == ids.index("backup.restore")
    assert catalog.rank("volume.unknown") > catalog.rank("volume.mount")
    assert catalog.rank("volume.unknown") < catalog.rank("restart.retention")
    assert catalog.rank("") > catalog.rank("backup.restore")  # tests without a check id
    assert catalog.rank("fresh_install.schema[vectors]") == catalog.rank("fresh_install.schema")


def failed(check_id: str, summary: str = "2 of 9 probes failed") -> dict[str, Any]:
    return {
        "id": check_id,
        "suite": check_id.split(".")[0],
        "status": "failed",
        "summary": summary,
        "evidence": [],
        "duration_s": 0.1,
    }


def test_a_failed_constraints_check_has_its_own_risk() -> None:
    text = render_markdown(results(verdict="FAIL", checks=[failed("fresh_install.constraints")]))
    entry = catalog.lookup("fresh_install.constraints")
    assert entry is not None
    assert f"| `fresh_install.constraints` (FAIL) | {entry.risk} | HIGH |" in text
    assert "Not classified." not in text


@pytest.fixture
def team_check() -> Iterator[Check]:
    """A team's own check in a bundled suite (backup), registered as a conftest.py would."""
    entry = Check(
        "backup.rehearsal",
        9,
        "A restored backup has every row.",
        "Restores lose rows: a backup cannot be relied on.",
        "HIGH",
        "Back up with the SQLite backup API, not a file copy.",
        "Restore {database} from a backup taken with the backup API: {summary}",
    )
    catalog.register(entry)
    yield entry
    catalog.unregister(entry.id)


def test_a_registered_check_shows_in_the_report_without_editing_it(team_check: Check) -> None:
    doc = results(verdict="FAIL", checks=[failed("backup.rehearsal", "3 rows lost")])
    text = render_markdown(doc)
    assert "## Backup and restore (`backup`)" in text
    assert "What was done: An online backup of the live database was taken" in text
    assert (
        "| `backup.rehearsal` (FAIL) | Restores lose rows: a backup cannot be relied on. | HIGH "
        "| Back up with the SQLite backup API, not a file copy. |"
    ) in text
    assert (
        "1. `backup.rehearsal` (FAIL): Restore /data/app.db from a backup taken with the backup "
        "API: 3 rows lost"
    ) in text
    # Its suite ran, so backups are no longer a residual risk or an untested area.
    assert "Backups and restores were not verified." not in text
    assert "Verify that backups restore" not in text
    assert "Not tested: crash under load and upgrades (no suites for them ran)." in text
    assert "Upgrades from the previous release's database were not tested." in text
    case = ET.fromstring(render_junit(doc)).find(".//testcase")
    assert case is not None
    props = {p.get("name"): p.get("value") for p in case.iter("property")}
    assert props == {"title": team_check.title, "severity": "HIGH"}


def test_a_suite_that_did_not_test_leaves_its_gap() -> None:
    text = render_markdown(results())
    assert "Backups and restores were not verified." in text
    assert (
        "Not tested: backup/restore, crash under load and upgrades (no suites for them ran)."
    ) in text
    blocked = results(checks=[{**failed("backup.restore"), "status": "blocked"}])
    assert "Backups and restores were not verified." in render_markdown(blocked)


def test_the_untested_areas_follow_the_gaps(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(catalog, "GAPS", [Gap("Nothing was fuzzed.", "fuzz", "fuzzing")])
    text = render_markdown(results())
    assert "Not tested: fuzzing (no suites for them ran)." in text
    assert "- Nothing was fuzzed." in text
    assert "Backups and restores were not verified." not in text
    monkeypatch.setattr(catalog, "GAPS", [])
    assert "Not tested: nothing." in render_markdown(results())


def test_an_unknown_check_renders_as_not_classified() -> None:
    doc = results(verdict="FAIL", checks=[failed("team.other", "odd")])
    text = render_markdown(doc)
    assert "## team (`team`)" in text
    assert "| `team.other` (FAIL) | Not classified. | MEDIUM | Investigate the finding. |" in text
    assert "1. `team.other` (FAIL): Investigate: odd" in text
    case = ET.fromstring(render_junit(doc)).find(".//testcase")
    assert case is not None
    assert case.find("properties") is None


def test_entries_are_checked_when_registered() -> None:
    with pytest.raises(CatalogError, match="severity 'SEVERE'"):
        Check("team.x", 0, "t", "r", "SEVERE", "m")
    with pytest.raises(CatalogError, match=r"quotes \{volume\}; it may quote \{database\}, "):
        Check("team.x", 0, "t", "r", "LOW", "m", "Move {volume}")
    with pytest.raises(CatalogError, match=r"quotes \{\}; "):
        Check("team.x", 0, "t", "r", "LOW", "m", "Use {} here")
    with pytest.raises(CatalogError, match="malformed recommendation"):
        Check("team.x", 0, "t", "r", "LOW", "m", "Use { here")
    assert Check("team.x", 0, "t", "r", "LOW", "m", "Set {{a}}: {summary}").advice(
        {"summary": "s"}
    ) == ("Set {a}: s")
    with pytest.raises(CatalogError, match=r"not of the form suite\.check"):
        Check("team.x[db]", 0, "t", "r", "LOW", "m")
    with pytest.raises(CatalogError, match="register its suite 'team' first"):
        catalog.register(Check("team.x", 0, "t", "r", "LOW", "m"))
    entry = catalog.lookup("volume.mount")
    assert entry is not None
    catalog.register(entry)  # the same entry again: a conftest imported twice
    with pytest.raises(CatalogError, match="already in the catalog"):
        catalog.register(Check("volume.mount", 0, "t", "r", "LOW", "m"))
    with pytest.raises(CatalogError, match="suite 'volume' is already"):
        catalog.register(Suite("volume", 9, "Other"))


def waiver_config(config_dir: Path, check_id: str) -> Path:
    path = config_dir / "audit.yaml"
    path.write_text(
        GOOD_CONFIG + "waivers:\n"
        f"  - {{check: '{check_id}', justification: j, accepted_by: A, expires: 2030-01-01}}\n"
    )
    return path


@pytest.mark.parametrize("check_id", ["volume.mount", "fresh_install.schema[vectors]"])
def test_waivers_name_catalog_checks(config_dir: Path, check_id: str) -> None:
    assert load_config(waiver_config(config_dir, check_id)).waivers[0].check == check_id


@pytest.mark.parametrize(
    "check_id", ["volume.mounts", "team.x", "volume.mount[]", "volume", "fresh_install.nope[db]"]
)
def test_a_waiver_for_an_unknown_check_is_a_config_error(config_dir: Path, check_id: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(waiver_config(config_dir, check_id))
    message = str(info.value)
    assert f"audit.yaml:20: waivers.0.check: unknown check '{check_id}'" in message
    assert "fresh_install.startup, fresh_install.database, fresh_install.schema, " in message
    assert "recreate.retention, crash.integrity, crash.acknowledged_writes, backup.integrity, " in (
        message
    )
    assert "backup.restore, upgrade.schema, upgrade.retention (suite.check, or suite" in message


def test_a_waiver_may_name_a_registered_team_check(config_dir: Path, team_check: Check) -> None:
    assert load_config(waiver_config(config_dir, "backup.rehearsal")).waivers[0].check == (
        team_check.id
    )


TEAM_CONFTEST = """
from persistaudit import catalog
from persistaudit.catalog import Check, Suite

catalog.register(Suite("team", 10, "Team checks", "The team's own probes ran."))
catalog.register(
    Check(
        "team.backup_age",
        0,
        "The newest backup is less than a day old.",
        "Backups are stale: a restore loses a day of writes.",
        "HIGH",
        "Schedule backups at least daily.",
        "Schedule the backup of {database}: {summary}",
    )
)
"""
TEAM_SUITE = """
import pytest

@pytest.mark.check("team.backup_age")
def test_backup_age(persistaudit_check):
    persistaudit_check.summary = "newest backup is 3 days old"
    assert False
"""


def test_a_teams_conftest_registers_checks_its_waivers_and_report_use(config_dir: Path) -> None:
    """Through the plugin: registered in a conftest.py before the config's waivers are read."""
    (config_dir / "conftest.py").write_text(TEAM_CONFTEST)
    (config_dir / "test_team.py").write_text(TEAM_SUITE)
    config = waiver_config(config_dir, "team.backup_age")
    out = config_dir / "out"
    proc = subprocess.run(
        [
            *(sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", str(config_dir)),
            *(f"--persistaudit-config={config}", f"--persistaudit-out={out}", "-c", "/dev/null"),
        ],
        cwd=config_dir,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    doc = json.loads((out / "results.json").read_text())
    # The team's check alone: the bundled ones are listed as not run (a partial audit).
    (check,) = [c for c in doc["checks"] if c["id"] in doc["coverage"]["custom_checks"]]
    assert (check["id"], check["status"]) == ("team.backup_age", "waived")
    assert doc["coverage"]["complete"] is False
    report = (out / "report.md").read_text()
    assert "## Team checks (`team`)" in report
    assert "What was done: The team's own probes ran." in report
    # No audit ran (no container), so the target's database is not known: "?".
    assert "`team.backup_age` (WAIVED): Schedule the backup of ?: newest backup is 3 days old" in (
        report
    )


def test_the_readme_documents_every_check_and_its_catalog_example_runs() -> None:
    readme = (REPO / "README.md").read_text()
    table = readme.split("## Checks", 1)[1].split("\n\n", 2)[1]
    assert [line.split("`")[1] for line in table.splitlines()[2:]] == catalog.ids()
    example = next(b for b in readme.split("```python\n") if "catalog.register(" in b)
    try:
        exec(example.split("```", 1)[0], {})
        entry = catalog.lookup("team.seed_rows")
        assert entry is not None
        assert entry.suite == "team"
        assert entry.advice({"summary": "3 rows"}) == "Remove the seed rows: 3 rows"
    finally:
        catalog.unregister("team.seed_rows")
    assert catalog.suite("team") is None


def test_the_start_gate_is_where_a_blocked_check_points() -> None:
    assert catalog.gates() == ["fresh_install.startup"]

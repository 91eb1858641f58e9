"""Per-database checks in a team's run: one test and one result per database, `check[name]`."""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import pytest

from persistaudit.documents import RESULTS_SCHEMA_FILE, SCHEMAS
from tests.helpers import GOOD_CONFIG, MANIFEST

pytest_plugins = ["pytester"]

TWO_DATABASES = GOOD_CONFIG.replace(
    """database:
  path: /data/app.db
""",
    """databases:
  - name: main
    path: /data/app.db
    manifest: manifest.yaml
    append_only: [items]
    immutable: [owners]
  - {name: vectors, path: /data/vectors.db, manifest: manifest.yaml, persist: false}
""",
).replace(
    """expect:
  manifest: manifest.yaml
""",
    "",
)

CATALOG = """
from persistaudit import catalog

catalog.register(catalog.Suite("team", 90, "The team's own checks"))
catalog.register(catalog.Check("team.db", 1, "each database", "Team risk.", "LOW", "Fix it."))
"""

CHECKS = """
import pytest


@pytest.mark.check("team.db")
def test_db(persistaudit_database, persistaudit_check):
    persistaudit_check.summary = f"{persistaudit_database.name} at {persistaudit_database.path}"
    assert persistaudit_database.name != "vectors", "the vectors database is wanting"
"""


def results(pytester: pytest.Pytester) -> dict[str, Any]:
    return dict(json.loads((pytester.path / "out" / "results.json").read_text()))


def statuses(doc: dict[str, Any]) -> dict[str, str]:
    """The team's own checks' statuses (the bundled ones a team-only run lists as not run
    are the subject of test_team_checks_alone_are_a_partial_audit)."""
    return {
        c["id"]: c["status"] for c in doc["checks"] if c["id"] in doc["coverage"]["custom_checks"]
    }


def run(pytester: pytest.Pytester, config: str, *args: str) -> pytest.RunResult:
    pytester.makefile(".yaml", audit=config, manifest=MANIFEST)
    return pytester.runpytest_subprocess(
        "--persistaudit-config=audit.yaml", "--persistaudit-out=out", "-v", *args
    )


def test_one_result_per_database_with_its_name_in_the_id(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(conftest=CATALOG, test_team=CHECKS)
    result = run(pytester, TWO_DATABASES)
    assert result.ret == 1, result.stdout.str()
    result.stdout.fnmatch_lines(["*test_db?main? PASSED*", "*test_db?vectors? FAILED*"])
    doc = results(pytester)
    assert statuses(doc) == {"team.db[main]": "passed", "team.db[vectors]": "failed"}
    jsonschema.validate(doc, json.loads((SCHEMAS / RESULTS_SCHEMA_FILE).read_text()))
    assert [d["name"] for d in doc["target"]["databases"]] == ["main", "vectors"]
    assert doc["target"]["databases"][1]["persist"] is False
    main = doc["target"]["databases"][0]
    assert (main["append_only"], main["immutable"]) == (["items"], ["owners"])
    junit = (pytester.path / "out" / "junit.xml").read_text()
    assert 'name="team.db[vectors]"' in junit


def test_k_selects_one_database(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(conftest=CATALOG, test_team=CHECKS)
    result = run(pytester, TWO_DATABASES, "-k", "main")
    assert result.ret == 0, result.stdout.str()
    doc = results(pytester)
    assert statuses(doc) == {"team.db[main]": "passed", "team.db[vectors]": "skipped"}


@pytest.mark.parametrize(
    ("waived", "expected"),
    [
        ("team.db", "waived"),  # a plain id covers every database
        ("team.db[vectors]", "waived"),
        ("team.db[main]", "failed"),  # another database's waiver does not
    ],
)
def test_waivers_name_a_check_or_one_database_of_it(
    pytester: pytest.Pytester, waived: str, expected: str
) -> None:
    pytester.makepyfile(conftest=CATALOG, test_team=CHECKS)
    config = (
        TWO_DATABASES
        + f"""waivers:
  - check: "{waived}"
    justification: the vectors cache is rebuilt
    accepted_by: team lead
    expires: 2999-01-01
"""
    )
    run(pytester, config)
    assert statuses(results(pytester))["team.db[vectors]"] == expected


def test_one_database_keeps_plain_ids(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(conftest=CATALOG, test_team=CHECKS)
    result = run(pytester, GOOD_CONFIG)
    assert result.ret == 0, result.stdout.str()
    result.stdout.fnmatch_lines(["*test_db PASSED*"])
    assert statuses(results(pytester)) == {"team.db": "passed"}


OVERRIDE = (
    CATALOG
    + """
import pytest
from persistaudit.config import TargetConfig

DATABASES = [
    {"name": "main", "path": "/data/app.db", "manifest": "manifest.yaml"},
    {"name": "vectors", "path": "/data/vectors.db", "manifest": "manifest.yaml"},
]


@pytest.fixture(scope="session")
def persistaudit_config():
    return TargetConfig.model_validate({
        "name": "built-in-code",
        "image": "example/demo:2",
        "databases": DATABASES,
        "volume": {"mount": "/data"},
        "readiness": {"http": {"path": "/health", "port": 8080}},
        "canary": {
            "write": [{"method": "POST", "path": "/items", "port": 8080, "expect_status": 201}],
            "read": [{"path": "/items", "port": 8080, "expect_body_contains": "{marker}"}],
        },
    })
"""
)
HOOK = """

def pytest_persistaudit_databases(config):
    return [d["name"] for d in DATABASES]
"""


def test_an_overriding_conftest_names_its_databases_in_a_hook(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(conftest=OVERRIDE + HOOK, test_team=CHECKS)
    pytester.makefile(".yaml", manifest=MANIFEST)
    result = pytester.runpytest_subprocess("--persistaudit-out=out")
    assert result.ret == 1, result.stdout.str()
    assert statuses(results(pytester)) == {
        "team.db[main]": "passed",
        "team.db[vectors]": "failed",
    }


def test_an_override_with_several_databases_and_no_hook_is_a_usage_error(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(conftest=OVERRIDE, test_team=CHECKS)
    pytester.makefile(".yaml", manifest=MANIFEST)
    result = pytester.runpytest_subprocess("--persistaudit-out=out")
    assert result.ret == pytest.ExitCode.USAGE_ERROR, result.stdout.str()
    result.stdout.fnmatch_lines(["*the config lists 2 databases (main, vectors)*"])
    result.stdout.fnmatch_lines(["*pytest_persistaudit_databases*"])

"""The pytest plugin in a team's own runs, through pytester (no Docker: no check starts a target).

Installing persistaudit must change nothing in a run that gives no target; a target given by
an overriding `persistaudit_config` fixture is the one the results, waivers and redaction use.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import pytest

from tests.helpers import GOOD_CONFIG, MANIFEST

pytest_plugins = ["pytester"]

REAPER = "TESTCONTAINERS_RYUK_DISABLED"

CHECKS = """
import pytest


@pytest.mark.check("team.recorded")
def test_recorded(persistaudit_check):
    persistaudit_check.summary = "fine"


@pytest.mark.check("team.started")
def test_started(persistaudit_started):
    pass


@pytest.mark.check("team.bare")
def test_bare():
    pass


def test_the_teams_own():
    assert True
"""

# A service team's conftest that builds its target in code.
OVERRIDE = """
import datetime

import pytest
from persistaudit import catalog
from persistaudit.config import TargetConfig

# A team's own check is in the catalog before a waiver may name it.
catalog.register(catalog.Suite("team", 90, "The team's own checks"))
catalog.register(
    catalog.Check("team.known", 1, "a known issue stays known", "Team risk.", "LOW", "Fix it.")
)


@pytest.fixture(scope="session")
def persistaudit_config():
    return TargetConfig.model_validate({
        "name": "built-in-code",
        "image": "example/demo:2",
        "env": {"API_TOKEN": "s3cret-from-code"},
        "database": {"path": "/data/app.db"},
        "volume": {"mount": "/data"},
        "readiness": {"http": {"path": "/health", "port": 8080}},
        "canary": {
            "write": [{"method": "POST", "path": "/items", "port": 8080, "expect_status": 201}],
            "read": [{"path": "/items", "port": 8080, "expect_body_contains": "{marker}"}],
        },
        "expect": {"manifest": "manifest.yaml"},
        "waivers": [{
            "check": "team.known",
            "justification": "tracked upstream",
            "accepted_by": "team lead",
            "expires": datetime.date.today() + datetime.timedelta(days=30),
        }],
    })
"""

OVERRIDE_CHECKS = """
import pytest


@pytest.mark.check("team.named")
def test_named(persistaudit_config, persistaudit_session, persistaudit_check):
    persistaudit_check.summary = f"{persistaudit_config.name} with s3cret-from-code"
    assert persistaudit_session.target is persistaudit_config


@pytest.mark.check("team.known")
def test_known(persistaudit_check):
    assert False, "a known defect"


@pytest.mark.check("team.blocked")
def test_blocked(persistaudit_check):
    raise persistaudit_check.blocked("the target did not start")
"""


def results(pytester: pytest.Pytester) -> dict[str, Any]:
    return dict(json.loads((pytester.path / "out" / "results.json").read_text()))


def statuses(doc: dict[str, Any]) -> dict[str, str]:
    """The team's own checks' statuses (the bundled ones a team-only run lists as not run
    are the subject of test_team_checks_alone_are_a_partial_audit)."""
    return {
        c["id"]: c["status"] for c in doc["checks"] if c["id"] in doc["coverage"]["custom_checks"]
    }


def test_without_a_target_checks_are_skipped_and_other_tests_run(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(test_team=CHECKS)
    result = pytester.runpytest_subprocess("-rs", "--persistaudit-out=out")
    result.assert_outcomes(passed=1, skipped=3)
    assert result.ret == 0
    result.stdout.fnmatch_lines(["*SKIPPED*no target config*--persistaudit-config CONFIG*"])
    assert not (pytester.path / "out").exists()  # nothing to report, nothing written


def test_without_a_target_a_failing_test_of_the_team_still_fails(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(test_team=CHECKS + "\n\ndef test_broken():\n    assert False\n")
    result = pytester.runpytest_subprocess()
    result.assert_outcomes(passed=1, failed=1, skipped=3)
    assert result.ret == pytest.ExitCode.TESTS_FAILED


def test_the_plugin_leaves_the_environment_alone(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """testcontainers' reaper stays as the team configured it for the team's own containers."""
    monkeypatch.delenv(REAPER, raising=False)
    pytester.makepyfile(
        test_env=f"""
        import os

        def test_environment_is_the_teams():
            assert {REAPER!r} not in os.environ
        """
    )
    result = pytester.runpytest_subprocess()
    result.assert_outcomes(passed=1)
    probe = (
        "import os, sys; before = dict(os.environ); "
        "import persistaudit.plugin, persistaudit.cli, persistaudit.engine, persistaudit.audit; "
        "sys.exit(0 if dict(os.environ) == before else 1)"
    )
    env = {k: v for k, v in os.environ.items() if k != REAPER}
    assert subprocess.run([sys.executable, "-c", probe], env=env, check=False).returncode == 0


def test_the_reaper_is_off_only_while_persistaudit_starts_a_container(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from testcontainers.core.config import testcontainers_config as tc

    from persistaudit import engine

    monkeypatch.delenv(REAPER, raising=False)
    monkeypatch.setattr(tc, "ryuk_disabled", False)
    with engine.without_reaper():
        assert tc.ryuk_disabled is True
    assert tc.ryuk_disabled is False
    monkeypatch.setenv(REAPER, "false")  # the user turned it on: persistaudit's use it too
    with engine.without_reaper():
        assert tc.ryuk_disabled is False


def test_an_overridden_config_is_the_one_audited(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(conftest=OVERRIDE, test_team=OVERRIDE_CHECKS)
    pytester.makefile(".yaml", manifest=MANIFEST)
    result = pytester.runpytest_subprocess("--persistaudit-out=out", "-k", "not blocked")
    assert result.ret == 0, result.stdout.str()
    doc = results(pytester)
    assert doc["verdict"] == "PASS"
    assert doc["target"]["name"] == "built-in-code"
    assert doc["target"]["config"] == "persistaudit_config fixture"
    assert len(doc["environment"]["config_sha256"]) == 64
    assert statuses(doc) == {
        "team.named": "passed",
        "team.known": "waived",
        "team.blocked": "skipped",
    }
    named = next(c for c in doc["checks"] if c["id"] == "team.named")
    assert named["summary"] == "built-in-code with [REDACTED]"  # the override's secret
    assert "s3cret-from-code" not in (pytester.path / "out" / "report.md").read_text()


def test_an_overridden_config_wins_over_the_option(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(conftest=OVERRIDE, test_team=OVERRIDE_CHECKS)
    pytester.makefile(".yaml", audit=GOOD_CONFIG, manifest=MANIFEST)
    result = pytester.runpytest_subprocess(
        "--persistaudit-config=audit.yaml", "--persistaudit-out=out"
    )
    assert result.ret == 3, result.stdout.str()  # BLOCKED exits non-zero
    doc = results(pytester)
    assert doc["verdict"] == "BLOCKED"
    assert doc["target"]["name"] == "built-in-code"
    assert statuses(doc)["team.known"] == "waived"
    assert statuses(doc)["team.blocked"] == "blocked"


def test_a_check_that_blocks_exits_3_with_the_option(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_team="""
        import pytest

        @pytest.mark.check("team.named")
        def test_named(persistaudit_config, persistaudit_check):
            persistaudit_check.summary = persistaudit_config.name

        @pytest.mark.check("team.blocked")
        def test_blocked(persistaudit_check):
            raise persistaudit_check.blocked("the target did not start")
        """
    )
    pytester.makefile(".yaml", audit=GOOD_CONFIG, manifest=MANIFEST)
    result = pytester.runpytest_subprocess(
        "--persistaudit-config=audit.yaml", "--persistaudit-out=out"
    )
    assert result.ret == 3, result.stdout.str()
    doc = results(pytester)
    assert doc["target"]["name"] == "demo"
    assert doc["target"]["config"] == "../audit.yaml"  # relative to the folder of results.json
    assert statuses(doc) == {"team.named": "passed", "team.blocked": "blocked"}


BROKEN_FIRST = """
import pytest


@pytest.fixture(scope="session")
def team_data():
    raise RuntimeError("the team's own fixture broke")


@pytest.mark.check("team.early")
def test_early(team_data, persistaudit_check):
    pass


@pytest.mark.check("team.later")
def test_later(persistaudit_config, persistaudit_check):
    persistaudit_check.summary = persistaudit_config.name
"""


@pytest.mark.parametrize("option", [True, False], ids=["option", "fixture-only"])
def test_a_check_broken_before_it_asks_for_the_target_is_kept_for_that_target(
    pytester: pytest.Pytester, option: bool
) -> None:
    """Recorded against the fixture's target once known, never against the option's."""
    pytester.makepyfile(conftest=OVERRIDE, test_team=BROKEN_FIRST)
    pytester.makefile(".yaml", audit=GOOD_CONFIG, manifest=MANIFEST)
    config = ["--persistaudit-config=audit.yaml"] if option else []
    result = pytester.runpytest_subprocess(*config, "--persistaudit-out=out")
    assert result.ret == 4, result.stdout.str()
    doc = results(pytester)
    assert doc["target"]["name"] == "built-in-code"
    assert statuses(doc) == {"team.early": "error", "team.later": "passed"}


def test_a_check_broken_before_any_asks_for_the_target_is_kept_for_the_option(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(test_team=BROKEN_FIRST.split('@pytest.mark.check("team.later')[0])
    pytester.makefile(".yaml", audit=GOOD_CONFIG, manifest=MANIFEST)
    result = pytester.runpytest_subprocess(
        "--persistaudit-config=audit.yaml", "--persistaudit-out=out"
    )
    assert result.ret == 4, result.stdout.str()
    doc = results(pytester)
    assert doc["target"]["name"] == "demo"
    assert statuses(doc) == {"team.early": "error"}


def test_a_second_overridden_target_in_one_run_blocks_its_checks(pytester: pytest.Pytester) -> None:
    """Not audited silently as the first target: one pytest run audits one target."""
    for name in ("first", "second"):
        folder = pytester.mkpydir(name)
        (folder / "conftest.py").write_text(OVERRIDE.replace("built-in-code", name))
        (folder / f"test_{name}.py").write_text(
            "import pytest\n\n"
            f"@pytest.mark.check('team.{name}')\n"
            f"def test_{name}(persistaudit_config, persistaudit_check):\n"
            "    persistaudit_check.summary = persistaudit_config.name\n"
        )
    result = pytester.runpytest_subprocess("--persistaudit-out=out")
    assert result.ret == 3, result.stdout.str()
    doc = results(pytester)
    assert doc["target"]["name"] == "first"
    assert statuses(doc) == {"team.first": "passed", "team.second": "blocked"}
    second = next(c for c in doc["checks"] if c["id"] == "team.second")
    assert "gave target 'second' after this run started auditing 'first'" in second["summary"]

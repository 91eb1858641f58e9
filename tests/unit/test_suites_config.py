"""The `suites:` block: which optional suites run, and how; errors name the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from persistaudit.config import SuitesSpec, load_config
from persistaudit.exceptions import ConfigError


def with_suites(config_dir: Path, block: str) -> Path:
    path = config_dir / "suites.yaml"
    path.write_text((config_dir / "audit.yaml").read_text() + block)
    return path


def test_by_default_crash_and_backup_are_off_and_the_restart_checks_on(config_dir: Path) -> None:
    suites = load_config(config_dir / "audit.yaml").suites
    assert not suites.enabled("crash.acknowledged_writes")
    assert not suites.enabled("backup.restore[main]")
    assert suites.enabled("restart.graceful_stop")
    assert suites.enabled("restart.idempotent_init")
    assert suites.enabled("restart.retention")
    assert suites.enabled("fresh_install.schema[vectors]")
    assert suites.graceful_stop.timeout == 10.0


def test_suites_are_switched_and_tuned_in_the_config(config_dir: Path) -> None:
    block = (
        "suites:\n"
        "  graceful_stop: {enabled: false}\n"
        "  crash: {enabled: true, rounds: 5, kill_after: [1, 3], seed: 7}\n"
        "  backup: {enabled: true, command: [app, backup, /data/b.db], output: /data/b.db}\n"
    )
    suites = load_config(with_suites(config_dir, block)).suites
    assert not suites.enabled("restart.graceful_stop")
    assert suites.enabled("crash.integrity")
    assert suites.crash.rounds == 5
    assert suites.crash.kill_after == (1.0, 3.0)
    assert suites.backup.output == "/data/b.db"


@pytest.mark.parametrize(
    ("block", "expected"),
    [
        ("suites:\n  crash: {kill_after: [3, 1]}\n", r"suites\.crash.*kill_after"),
        ("suites:\n  backup: {command: [x]}\n", r"suites\.backup.*command and output go together"),
        ("suites:\n  backup: {database: nope}\n", r"suites\.backup\.database: no database named"),
        ("suites:\n  crash: {rounds: 0}\n", r"suites\.crash\.rounds"),
        ("suites:\n  graceful: {}\n", r"suites\.graceful"),
    ],
)
def test_bad_suite_settings_name_the_field(config_dir: Path, block: str, expected: str) -> None:
    with pytest.raises(ConfigError, match=expected):
        load_config(with_suites(config_dir, block))


def test_a_check_outside_the_optional_suites_is_always_enabled() -> None:
    assert SuitesSpec(crash={"enabled": False}).enabled("team.backup_age")  # type: ignore[arg-type]


def test_the_upgrade_suite_runs_when_upgrade_from_names_a_previous_version(
    config_dir: Path,
) -> None:
    assert not load_config(config_dir / "audit.yaml").suites.enabled("upgrade.retention")
    config = load_config(with_suites(config_dir, "upgrade_from: {image: example/demo:0}\n"))
    assert config.suites.enabled("upgrade.schema")
    assert config.suites.enabled("upgrade.retention[main]")
    assert config.upgrade_from is not None
    assert config.upgrade_from.image == "example/demo:0"


def test_the_upgrade_suite_can_be_switched_off_with_upgrade_from_given(config_dir: Path) -> None:
    block = "upgrade_from: {image: example/demo:0}\nsuites:\n  upgrade: {enabled: false}\n"
    assert not load_config(with_suites(config_dir, block)).suites.enabled("upgrade.schema")


def test_an_upgrade_build_is_resolved_against_the_configs_folder(config_dir: Path) -> None:
    (config_dir / "old").mkdir()
    (config_dir / "old" / "Dockerfile").write_text("FROM scratch\n")
    block = "upgrade_from:\n  build: {context: old, args: {RELEASE: '1'}}\n"
    config = load_config(with_suites(config_dir, block))
    assert config.upgrade_from is not None
    assert config.upgrade_from.build is not None
    assert config.upgrade_from.build.context == (config_dir / "old").resolve()
    assert config.upgrade_from.build.args == {"RELEASE": "1"}


@pytest.mark.parametrize(
    ("block", "expected"),
    [
        (
            "suites:\n  upgrade: {enabled: true}\n",
            r"suites\.upgrade\.enabled: .*needs upgrade_from",
        ),
        ("upgrade_from: {}\n", r"upgrade_from.*exactly one of image or build"),
        (
            "upgrade_from: {image: a:1, build: {context: .}}\n",
            r"upgrade_from.*exactly one of image or build",
        ),
        ("upgrade_from: {tag: a:1}\n", r"upgrade_from\.tag"),
        ("upgrade_from: {build: {context: nowhere}}\n", r"upgrade_from\.build\.context: folder"),
        (
            "upgrade_from: {build: {context: ., dockerfile: Nope}}\n",
            r"upgrade_from\.build\.dockerfile: Nope not found",
        ),
        ("suites:\n  upgrade: {timeout: 3}\n", r"suites\.upgrade\.timeout"),
    ],
)
def test_bad_upgrade_settings_name_the_field(config_dir: Path, block: str, expected: str) -> None:
    with pytest.raises(ConfigError, match=expected):
        load_config(with_suites(config_dir, block))

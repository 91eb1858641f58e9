"""The upgrade rehearsal's pure parts: which image the previous version is, its name, and
the stage on a driver that cannot rehearse an upgrade."""

from __future__ import annotations

from pathlib import Path

import pytest

from persistaudit.config import load_config
from persistaudit.runtime.upgrade import describe, previous_config
from tests.unit.test_suites_config import with_suites


def test_a_previous_build_gets_its_own_tag_never_the_current_ones(config_dir: Path) -> None:
    (config_dir / "Dockerfile").write_text("FROM scratch\n")
    block = "upgrade_from:\n  build: {context: ., args: {RELEASE: '1'}}\n"
    config = load_config(with_suites(config_dir, block))
    previous = previous_config(config)
    assert previous.image is None
    assert previous.build is not None
    assert previous.image_ref == "persistaudit/demo:previous"
    assert previous.build.args == {"RELEASE": "1"}
    # Everything else is the target's own: env, readiness, volume.
    assert previous.env == config.env
    assert previous.readiness == config.readiness
    assert previous.volume_mount == config.volume_mount
    assert describe(config.upgrade_from) == f"build of {config_dir} --build-arg RELEASE=1"  # type: ignore[arg-type]


def test_a_previous_image_replaces_the_targets_image(config_dir: Path) -> None:
    config = load_config(with_suites(config_dir, "upgrade_from: {image: example/demo:0}\n"))
    previous = previous_config(config)
    assert previous.image_ref == "example/demo:0"
    assert previous.build is None
    assert config.image_ref == "example/demo:1"  # the target's own is untouched
    assert describe(config.upgrade_from) == "example/demo:0"  # type: ignore[arg-type]


def test_no_previous_version_without_upgrade_from(config_dir: Path) -> None:
    with pytest.raises(ValueError, match="no upgrade_from"):
        previous_config(load_config(config_dir / "audit.yaml"))


def test_a_build_arg_named_like_a_secret_is_not_shown(config_dir: Path) -> None:
    (config_dir / "Dockerfile").write_text("FROM scratch\n")
    block = "upgrade_from:\n  build: {context: ., args: {NPM_TOKEN: s3cr3t-value, RELEASE: '1'}}\n"
    config = load_config(with_suites(config_dir, block))
    shown = describe(config.upgrade_from)  # type: ignore[arg-type]
    assert "s3cr3t-value" not in shown
    assert shown.endswith("--build-arg NPM_TOKEN=[REDACTED] --build-arg RELEASE=1")


def test_a_driver_without_an_upgrade_leaves_the_stage_blocked(config_dir: Path) -> None:
    """A driver that cannot rehearse an upgrade (the base Runtime's, here the fake's): the
    stage records the driver's one line as BLOCKED and rehearses nothing."""
    from types import SimpleNamespace

    from persistaudit.upgrade import run_upgrade
    from tests.unit.fakes import FakeRuntime

    config = load_config(with_suites(config_dir, "upgrade_from: {image: example/demo:0}\n"))
    logged: list[str] = []
    audit = SimpleNamespace(
        config=config, runtime=FakeRuntime.__new__(FakeRuntime), log=logged.append
    )
    run = run_upgrade(audit)  # type: ignore[arg-type]
    assert run.blocked.startswith(
        "the fake driver cannot start the previous version on its own volume yet"
    ), run.blocked
    assert run.canaries == []
    assert run.before == {}
    assert run.failure == ""
    assert logged == [f"BLOCKED: {run.blocked}"]

"""SIGINT, SIGTERM and SIGHUP stop a run alike; a second signal never cuts clean-up short."""

from __future__ import annotations

import os
import signal
import sys
import time
import types
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from persistaudit import signals
from persistaudit.cli import main


@pytest.fixture
def handlers() -> Iterator[None]:
    signals.reset()
    previous = signals.install()
    yield
    signals.restore(previous)
    signals.reset()


def deliver(sig: int) -> None:
    """Send a signal to this process; its handler runs before sleep returns."""
    os.kill(os.getpid(), sig)
    time.sleep(0.2)


@pytest.mark.parametrize(
    ("sig", "code"),
    [(signal.SIGINT, 130), (signal.SIGTERM, 143), (signal.SIGHUP, 129)],
)
def test_each_signal_is_an_interrupt_with_exit_code_128_plus_n(
    handlers: None, sig: int, code: int
) -> None:
    with pytest.raises(KeyboardInterrupt):
        deliver(sig)
    assert signals.exit_code() == code
    assert signals.name() == signal.Signals(sig).name


def test_a_second_signal_does_not_raise_and_the_first_one_counts(handlers: None) -> None:
    with pytest.raises(KeyboardInterrupt):
        deliver(signal.SIGTERM)
    deliver(signal.SIGINT)  # during clean-up: nothing is raised
    assert signals.exit_code() == 143


def test_a_shielded_block_finishes_and_the_signal_is_kept_for_the_next_check(
    handlers: None,
) -> None:
    steps = []
    with signals.shielded():
        deliver(signal.SIGINT)
        steps.append("removed the container")
        deliver(signal.SIGINT)
        steps.append("removed the volume")
    assert steps == ["removed the container", "removed the volume"]
    with pytest.raises(KeyboardInterrupt):
        signals.check()


def test_a_resuming_shield_raises_once_its_block_is_done(handlers: None) -> None:
    created = []

    def create() -> None:
        with signals.shielded(resume=True):
            deliver(signal.SIGHUP)
            created.append("volume")  # the engine call completes, so clean-up knows of it

    with pytest.raises(KeyboardInterrupt):
        create()
    assert created == ["volume"]
    assert signals.exit_code() == 129


def test_after_the_point_of_no_return_nothing_raises(handlers: None) -> None:
    signals.settle()
    deliver(signal.SIGTERM)
    signals.check()


def test_an_interrupted_command_exits_128_plus_n_not_click_aborted(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Click turns KeyboardInterrupt into "Aborted!" and exit 1, which reads as drift or FAIL."""

    def interrupted(*_args: object) -> None:
        raise KeyboardInterrupt

    signals.reset()
    monkeypatch.setattr("persistaudit.diff.diff", interrupted)  # imported by the command
    manifest = tmp_path / "m.yaml"
    manifest.write_text("manifest_version: 1\ntables: {}\n")
    result = CliRunner().invoke(main, ["diff", str(manifest), str(manifest)])
    signals.reset()
    assert result.exit_code == 130, result.output
    assert result.output.strip().splitlines()[-1].startswith("persistaudit: interrupted by SIGINT")
    assert "Aborted" not in result.output


def test_an_interrupt_during_the_first_import_of_docker_exits_without_a_traceback(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A signal that lands while a command first imports docker leaves that module half
    initialised (no docker.errors yet); the interrupt's own report must not import it again.
    Seen in CI: a SIGINT 0.47 s into `run` ended in a traceback from cleanup's import."""

    def interrupted(*_args: object) -> None:
        raise KeyboardInterrupt

    signals.reset()
    monkeypatch.setitem(sys.modules, "docker", types.ModuleType("docker"))  # half-imported
    monkeypatch.delitem(sys.modules, "persistaudit.cleanup")  # not imported yet
    monkeypatch.delattr("persistaudit.cleanup")
    monkeypatch.setattr("persistaudit.diff.diff", interrupted)
    manifest = tmp_path / "m.yaml"
    manifest.write_text("manifest_version: 1\ntables: {}\n")
    result = CliRunner().invoke(main, ["diff", str(manifest), str(manifest)])
    signals.reset()
    assert result.exit_code == 130, result.output
    assert result.output.strip().splitlines()[-1] == (
        "persistaudit: interrupted by SIGINT: no results written; nothing it created is left"
    )
    assert "Traceback" not in result.output


def test_an_interrupt_swallowed_by_a_finalizer_is_not_printed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A signal landing in a garbage collector's finalizer is remembered, not a traceback."""
    seen: list[BaseException | None] = []
    monkeypatch.setattr(signals, "_previous_unraisable", lambda args: seen.append(args.exc_value))
    monkeypatch.setattr(signals, "_received", None)

    class Args:
        exc_type = KeyboardInterrupt
        exc_value: BaseException | None = KeyboardInterrupt()
        exc_traceback = None
        err_msg = None
        object = None

    signals._unraisable(Args())  # type: ignore[arg-type]
    assert len(seen) == 1  # no signal came: not ours to hide
    monkeypatch.setattr(signals, "_received", 15)
    signals._unraisable(Args())  # type: ignore[arg-type]
    other = Args()
    other.exc_value = ValueError("a real bug in a finalizer")
    signals._unraisable(other)  # type: ignore[arg-type]
    assert [type(e) for e in seen] == [KeyboardInterrupt, ValueError]

"""The wait loop's decisions, on a scripted container (the real ones are in tests/docker)."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from persistaudit.config import ReadinessSpec
from persistaudit.exceptions import TargetBlocked
from persistaudit.readiness import (
    ContainerState,
    HealthWait,
    LogWait,
    PerStart,
    fold_repeats,
    strategy_for,
    wait_ready,
)


@dataclass
class Scripted:
    states: list[ContainerState]
    lines: list[str] = field(default_factory=list)
    name: str = "scripted"
    calls: int = 0

    def state(self) -> ContainerState:
        self.calls += 1
        return self.states[min(self.calls, len(self.states)) - 1]

    def logs(self, tail: int = 40, current_run: bool = False) -> list[str]:
        return self.lines[-tail:]

    def exec(self, command: list[str]) -> tuple[int, str]:
        return 1, ""

    def url(self, port: int, path: str) -> str:
        raise LookupError


def running(restarts: int = 0) -> ContainerState:
    return ContainerState("running", 0, restarts, "")


def test_ready_when_the_log_line_appears() -> None:
    c = Scripted([running()], ["starting", "listening on 8080"])
    assert wait_ready(c, LogWait("listening on"), timeout=1, interval=0.01) >= 0


def test_exit_is_blocked_with_code_and_logs() -> None:
    c = Scripted([ContainerState("exited", 78, 0, "")], ["licence key missing"])
    with pytest.raises(TargetBlocked) as info:
        wait_ready(c, LogWait("never"), timeout=5, interval=0.01)
    assert info.value.reason == "exited"
    assert info.value.evidence["exit_code"] == 78
    assert info.value.evidence["logs"] == ["licence key missing"]
    assert "exited with code 78" in str(info.value)


def test_restart_loop_is_blocked_even_when_caught_running() -> None:
    c = Scripted([running(0), ContainerState("restarting", 1, 1, ""), running(2)])
    with pytest.raises(TargetBlocked, match="restarts in a loop") as info:
        wait_ready(c, LogWait("never"), timeout=5, interval=0.01)
    assert info.value.evidence["restart_count"] >= 1


def test_a_restart_loop_names_the_exit_code_it_crashed_with() -> None:
    """The engine resets ExitCode to 0 once the container runs again: the loop is often caught
    running, and the code the service exited with was seen on an earlier poll."""
    c = Scripted([running(0), ContainerState("restarting", 78, 1, ""), running(2)])
    with pytest.raises(TargetBlocked, match="last exit code 78") as info:
        wait_ready(c, LogWait("never"), timeout=5, interval=0.01)
    assert info.value.evidence["exit_code"] == 78


def test_restarts_before_the_wait_do_not_count() -> None:
    c = Scripted([running(5)], ["ready"])
    assert wait_ready(c, LogWait("ready"), timeout=1, interval=0.01, restarts_before=5) >= 0


def test_repeated_lines_are_folded() -> None:
    lines = ["start", "probe", "probe", "probe", "x", "probe"]
    assert fold_repeats(lines) == ["start", "probe  [repeated 3 times]", "x", "probe"]


def test_timeout_says_what_it_waited_for() -> None:
    c = Scripted([running()], ["nothing useful"])
    with pytest.raises(TargetBlocked, match=r"not ready after 0.05 s .*log line matching") as info:
        wait_ready(c, LogWait("ready"), timeout=0.05, interval=0.01)
    assert info.value.reason == "timeout"


def health(status: str, *probes: str) -> ContainerState:
    return ContainerState("running", 0, 0, "", health=status, health_log=probes)


def test_healthcheck_waits_from_starting_to_healthy() -> None:
    c = Scripted([health("starting")] * 4 + [health("healthy")])
    assert wait_ready(c, HealthWait(), timeout=5, interval=0.01) >= 0
    assert c.calls >= 5  # not ready while the engine said starting


def test_unhealthy_past_the_timeout_is_blocked_with_the_health_log() -> None:
    probes = ("2026-01-01T00:00:01Z: exit 1: ConnectionRefusedError: [Errno 111]",)
    c = Scripted([health("unhealthy", *probes)], ["ready on port 8080"])
    with pytest.raises(
        TargetBlocked, match=r"healthcheck reports healthy; status running, health unhealthy"
    ) as info:
        wait_ready(c, HealthWait(), timeout=0.05, interval=0.01)
    assert info.value.reason == "timeout"
    assert info.value.evidence["health"] == "unhealthy"
    assert info.value.evidence["health_log"] == list(probes)
    assert info.value.evidence["logs"] == ["ready on port 8080"]


def test_a_container_without_a_healthcheck_is_blocked_at_once_naming_it() -> None:
    c = Scripted([running()])
    with pytest.raises(TargetBlocked, match=r"has no healthcheck .*HEALTHCHECK") as info:
        wait_ready(c, HealthWait(), timeout=5, interval=0.01)
    assert info.value.reason == "no-healthcheck"
    assert c.calls <= 2  # not after the timeout


def test_the_config_chooses_the_health_wait() -> None:
    spec = ReadinessSpec(healthcheck=True)
    assert strategy_for(spec) == HealthWait()
    assert strategy_for(spec).describe() == "healthcheck reports healthy"
    with pytest.raises(ValueError, match="exactly one of http, log, command or healthcheck"):
        ReadinessSpec(healthcheck=True, log="ready")
    with pytest.raises(ValueError, match="healthcheck"):
        ReadinessSpec(healthcheck=False)  # type: ignore[arg-type]


def test_a_loop_only_ever_caught_running_is_watched_for_its_next_exit_code() -> None:
    """Under load every poll may land while the container runs (ExitCode reset to 0): the
    next crash's code is then watched for, rather than reporting "last exit code 0"."""
    c = Scripted([running(0), running(2), running(2), ContainerState("restarting", 78, 2, "")])
    with pytest.raises(TargetBlocked, match="last exit code 78") as info:
        wait_ready(c, LogWait("never"), timeout=5, interval=0.01)
    assert info.value.evidence["exit_code"] == 78


def test_a_loop_that_exits_0_says_so_after_watching() -> None:
    c = Scripted([running(0), running(2)])
    with pytest.raises(TargetBlocked, match="last exit code 0"):
        wait_ready(c, LogWait("never"), timeout=5, interval=0.01)


@dataclass
class Ported(Scripted):
    """Publishes port 8080 from its second lookup on, on a port that changes with each start."""

    lookups: int = 0

    def url(self, port: int, path: str) -> str:
        self.lookups += 1
        if self.lookups == 1:
            raise LookupError("not published yet")
        state = self.states[min(self.calls, len(self.states)) - 1]
        return f"http://127.0.0.1:{30000 + len(state.started_at)}{path}"


def started(at: str) -> ContainerState:
    return ContainerState("running", 0, 0, "", started_at=at)


def test_a_wait_looks_a_port_up_once_per_start_of_the_container() -> None:
    c = Ported([started("t1"), started("t1"), started("t1"), started("t22")])
    polled = PerStart(c)
    polled.state()
    with pytest.raises(LookupError):  # not published yet: not kept, asked again next time
        polled.url(8080, "/health")
    assert polled.url(8080, "/health") == "http://127.0.0.1:30002/health"
    polled.state()
    assert polled.url(8080, "/x") == "http://127.0.0.1:30002/x"
    assert c.lookups == 2  # the same start: the port known
    polled.state()
    polled.state()  # started again (t22): its port is looked up anew
    assert polled.url(8080, "/health") == "http://127.0.0.1:30003/health"
    assert c.lookups == 3


def test_without_a_start_time_every_port_lookup_asks_the_container() -> None:
    c = Ported([running()])
    polled = PerStart(c)
    polled.state()
    with pytest.raises(LookupError):
        polled.url(8080, "/")
    polled.url(8080, "/")
    polled.url(8080, "/")
    assert c.lookups == 3

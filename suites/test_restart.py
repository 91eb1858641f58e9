"""Restart: every row written before `docker restart` is there after it; the service stops by
itself on SIGTERM; and starting again on an initialised volume changes nothing."""

from __future__ import annotations

import pytest
from _lifecycle import judge_starts, judge_stop
from _retention import judge

from persistaudit.audit import TargetAudit
from persistaudit.config import DatabaseEntry
from persistaudit.graceful_stop import GracefulStop
from persistaudit.idempotent_init import IdempotentInit
from persistaudit.plugin import CheckRecorder


@pytest.mark.check("restart.retention")
def test_restart_retention(
    persistaudit_started: TargetAudit,
    persistaudit_check: CheckRecorder,
    persistaudit_database: DatabaseEntry,
) -> None:
    audit = persistaudit_started
    cycle = audit.restart_cycle
    judge(cycle, persistaudit_check, "Data retention after restart", audit, persistaudit_database)


@pytest.mark.check("restart.graceful_stop")
def test_graceful_stop(
    persistaudit_started: TargetAudit, persistaudit_check: CheckRecorder
) -> None:
    stop = persistaudit_started.stage("graceful_stop")
    assert isinstance(stop, GracefulStop)
    judge_stop(stop, persistaudit_check)


@pytest.mark.check("restart.idempotent_init")
def test_idempotent_init(
    persistaudit_started: TargetAudit, persistaudit_check: CheckRecorder
) -> None:
    audit = persistaudit_started
    starts = audit.stage("idempotent_init")
    assert isinstance(starts, IdempotentInit)
    judge_starts(starts, persistaudit_check, audit)

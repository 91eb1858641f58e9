"""Restart: every row written before `docker restart` is there after it."""

from __future__ import annotations

import pytest
from _retention import judge

from persistaudit.audit import TargetAudit
from persistaudit.config import DatabaseEntry
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

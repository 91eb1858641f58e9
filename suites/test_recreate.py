"""Re-create: remove the container, keep the volume, start a new one: every row is there."""

from __future__ import annotations

import pytest
from _retention import judge

from persistaudit.audit import TargetAudit
from persistaudit.config import DatabaseEntry
from persistaudit.plugin import CheckRecorder


@pytest.mark.check("recreate.retention")
def test_recreate_retention(
    persistaudit_started: TargetAudit,
    persistaudit_check: CheckRecorder,
    persistaudit_database: DatabaseEntry,
) -> None:
    audit = persistaudit_started
    cycle = audit.recreate_cycle
    judge(cycle, persistaudit_check, "Data retention after re-create", audit, persistaudit_database)

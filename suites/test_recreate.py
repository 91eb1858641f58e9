"""Re-create: remove the container, keep the volume, start a new one: every row is there."""

from __future__ import annotations

import pytest
from _retention import judge

from persistaudit.audit import TargetAudit
from persistaudit.plugin import CheckRecorder


@pytest.mark.check("recreate.retention")
def test_recreate_retention(
    persistaudit_started: TargetAudit, persistaudit_check: CheckRecorder
) -> None:
    judge(persistaudit_started.recreate_cycle, persistaudit_check, "Data retention after re-create")

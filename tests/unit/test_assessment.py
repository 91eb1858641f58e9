"""Advice follows the cause of a finding, and never contradicts it."""

from __future__ import annotations

from typing import Any

from persistaudit.assessment import recommendation


def failed(check_id: str, summary: str) -> dict[str, Any]:
    return {"id": check_id, "status": "failed", "summary": summary, "evidence": []}


def test_a_database_off_the_volume_is_told_to_move_under_it() -> None:
    target = {"database": "/app/state/notes.db", "mount": "/data"}
    advice = recommendation(failed("recreate.retention", "20 of 20 canary records lost"), target)
    assert advice.startswith("Keep the database under the mounted volume (/data)")


def test_a_database_on_the_volume_that_lost_rows_is_not_told_to_move_there() -> None:
    target = {"database": "/var/lib/x/state.sqlite", "mount": "/var/lib/x"}
    advice = recommendation(failed("recreate.retention", "3 rows lost from jobs"), target)
    assert "Keep the database under" not in advice
    assert advice.startswith("/var/lib/x/state.sqlite is already on the mounted volume")
    assert "re-create" in advice
    assert advice.endswith("Found: 3 rows lost from jobs")


def test_one_of_several_mounts_holds_it() -> None:
    target = {"database": "/app/data/memory.db", "mount": "/app/config, /app/data"}
    advice = recommendation(failed("restart.retention", "1 row lost"), target)
    assert advice.startswith("/app/data/memory.db is already on the mounted volume")
    assert "across the restart" in advice


def test_a_prefix_that_is_no_folder_is_not_under_it() -> None:
    target = {"database": "/data2/app.db", "mount": "/data"}
    advice = recommendation(failed("recreate.retention", "lost"), target)
    assert advice.startswith("Keep the database under the mounted volume (/data)")


def test_canaries_lost_with_a_database_kept_elsewhere_point_at_the_root_cause() -> None:
    target = {"database": "/data/notes.db", "mount": "/data"}
    summary = (
        "20 of 20 canary records lost; rows not compared: no database at /data/notes.db "
        "(see fresh_install.database)"
    )
    advice = recommendation(failed("recreate.retention", summary), target)
    assert advice.startswith(
        "The service does not keep its database at /data/notes.db (see fresh_install.database)"
    )
    assert "already on the mounted volume" not in advice

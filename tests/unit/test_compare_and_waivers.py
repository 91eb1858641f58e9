from __future__ import annotations

import copy
import json
from datetime import date
from pathlib import Path

from click.testing import CliRunner

from persistaudit.cli import main
from persistaudit.compare import compare
from persistaudit.config import Waiver
from persistaudit.findings import apply_waiver
from tests.helpers import REPO

GOLDEN = REPO / "tests" / "golden"


def results(case: str) -> dict[str, object]:
    return dict(json.loads((GOLDEN / f"{case}.results.json").read_text()))


def test_compare_lists_regressions_and_improvements() -> None:
    old, new = results("pass"), results("fail")
    changes = {(c.kind, c.what, c.name) for c in compare(old, new)}
    assert ("regressed", "verdict", "verdict") in changes
    assert ("regressed", "check", "volume.mount") in changes
    assert ("regressed", "metric", "Data retention after re-create") in changes
    back = {(c.kind, c.name) for c in compare(new, old)}
    assert ("improved", "recreate.retention") in back
    assert compare(old, copy.deepcopy(old)) == []


def test_compare_command_exit_codes(tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(
        main, ["compare", str(GOLDEN / "pass.results.json"), str(GOLDEN / "fail.results.json")]
    )
    assert result.exit_code == 1
    assert "regressed check   volume.mount: passed -> failed" in result.output
    result = runner.invoke(
        main,
        ["compare", str(GOLDEN / "fail.results.json"), str(GOLDEN / "pass.results.json"), "--json"],
    )
    assert result.exit_code == 0
    assert {c["kind"] for c in json.loads(result.output)} == {"improved"}
    (tmp_path / "x.json").write_text("[]")
    result = runner.invoke(main, ["compare", str(tmp_path / "x.json"), str(tmp_path / "x.json")])
    assert result.exit_code == 2
    assert "not a persistaudit results.json" in result.output


WAIVER = Waiver(
    check="volume.mount",
    justification="moving to a volume in 2.1",
    accepted_by="Ada",
    expires=date(2026, 12, 31),
)


def test_a_waiver_holds_until_its_date_then_the_failure_is_back() -> None:
    status, summary, info = apply_waiver(
        "failed", "on the layer", [WAIVER], "volume.mount", date(2026, 12, 31)
    )
    assert (status, summary) == ("waived", "on the layer")
    assert info == {
        "justification": "moving to a volume in 2.1",
        "accepted_by": "Ada",
        "expires": "2026-12-31",
    }
    status, summary, info = apply_waiver(
        "failed", "on the layer", [WAIVER], "volume.mount", date(2027, 1, 1)
    )
    assert status == "failed"
    assert summary == "waiver expired on 2026-12-31: on the layer"
    assert info is not None
    assert info["expired"] == "true"


def test_waivers_touch_only_failures_of_their_own_check() -> None:
    day = date(2026, 1, 1)
    assert apply_waiver("passed", "ok", [WAIVER], "volume.mount", day)[0] == "passed"
    assert apply_waiver("blocked", "no", [WAIVER], "volume.mount", day)[0] == "blocked"
    assert apply_waiver("failed", "x", [WAIVER], "restart.retention", day)[0] == "failed"

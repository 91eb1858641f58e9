"""The crash suite on a real engine: SIGKILL in the middle of a write load through the API.

Proven both ways: the good notes-app passes (every acknowledged write read back, integrity ok);
lost-writes (201 from a write-behind buffer) fails exactly crash.acknowledged_writes;
torn-writes (no rollback journal, a transaction cut in half) fails crash.integrity. And the
verdicts are stable: five runs of the crash suite on the good service never report a loss,
five on lost-writes report one every time.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import docker
import pytest
import yaml

from tests.e2e.conftest import Audit, leftovers, persistaudit
from tests.e2e.test_demo_audits import ALL_CHECKS, only_failing
from tests.helpers import NOTES_APP, REPO

pytestmark = pytest.mark.docker

CRASH_CHECKS = {"crash.integrity", "crash.acknowledged_writes"}
STABILITY_RUNS = 5


def metrics(audit: Audit) -> dict[str, str]:
    return {m["name"]: m["achieved"] for m in audit.results["metrics"]}


def evidence(audit: Audit, check_id: str) -> dict[str, str]:
    return {e["title"]: e["content"] for e in audit.check(check_id)["evidence"]}


def test_the_good_service_keeps_every_acknowledged_write_through_kills(
    run_audit: Callable[..., Audit],
) -> None:
    audit = run_audit(NOTES_APP / "variants" / "crash.yaml")
    assert audit.code == 0, audit.stderr
    assert audit.statuses() == dict.fromkeys(ALL_CHECKS | CRASH_CHECKS, "passed")
    got = metrics(audit)
    acknowledged = int(got["Writes acknowledged before the kills"])
    assert acknowledged > 20
    assert got["Acknowledged writes lost"] == "0"
    assert got["Integrity after a kill during writes"] == "ok in 3 of 3 round(s)"
    assert got["Recovery time to ready after a kill"].endswith(" s")
    summary = audit.check("crash.acknowledged_writes")["summary"]
    assert (
        summary
        == f"all {acknowledged} acknowledged writes were read back after 3 kill(s) during writes"
    )
    shown = evidence(audit, "crash.acknowledged_writes")
    assert "kill points from seed " in shown["Rounds"]
    rounds = [v for k, v in shown.items() if k.startswith("Round ") and "SIGKILL" in k]
    assert len(rounds) == 3
    assert all("docker kill --signal SIGKILL" in r and "exit code 137" in r for r in rounds)
    # The suite ran: crash under load is no longer a residual risk of this audit.
    assert "after a crash (kill -9 during writes) was not tested" not in audit.report


def test_a_write_behind_buffer_loses_acknowledged_writes(
    run_audit: Callable[..., Audit],
) -> None:
    audit = run_audit(NOTES_APP / "defects" / "lost-writes.yaml")
    assert audit.code == 1, audit.stderr
    only_failing(audit, {"crash.acknowledged_writes"})
    summary = audit.check("crash.acknowledged_writes")["summary"]
    assert (
        " acknowledged writes were lost after a kill: the service answered before they were "
        "durable" in summary
    )
    assert "answered without 'pa-" in summary  # the read that missed it
    lost = int(metrics(audit)["Acknowledged writes lost"])
    assert lost > 0
    assert summary.startswith(f"{lost} of ")


def test_a_transaction_cut_in_half_without_a_journal_is_corruption(
    run_audit: Callable[..., Audit],
) -> None:
    audit = run_audit(NOTES_APP / "defects" / "torn-writes.yaml")
    assert audit.code == 1, audit.stderr
    statuses = audit.statuses()
    assert statuses["crash.integrity"] == "failed", statuses
    # Reads of a corrupt file may still work, fail, or the service may not start: the
    # acknowledged-writes check reports what it saw; every other check passes.
    assert {k for k, v in statuses.items() if v != "passed"} <= CRASH_CHECKS, statuses
    summary = audit.check("crash.integrity")["summary"]
    # A kill that lands between two transactions tears nothing: the round whose kill cut one
    # in half is the one named (under load, not always the first).
    torn = re.search(r"round (\d)", summary)
    assert torn, summary
    assert "malformed" in summary or "integrity_check" in summary or "did not start" in summary
    assert "/tmp/" not in summary  # the file is named as the service knows it
    assert (
        f"the rounds ended early: round {torn[1]} left main corrupt"
        in evidence(audit, "crash.integrity")["Rounds"]
        or "did not start" in summary
    )


def crash_only(config: Path, tmp_path: Path, engine: docker.DockerClient, n: int) -> Audit:
    """The crash suite alone (-k crash): start, three rounds, clean-up; nothing left behind."""
    out = tmp_path / f"out-{config.stem}-{n}"
    proc = persistaudit("run", str(config), "--out", str(out), "-k", "crash", timeout=240)
    results = json.loads((out / "results.json").read_text())
    assert not leftovers(engine, proc.pid)  # type: ignore[attr-defined]
    return Audit(proc.returncode, proc.stderr, results, "")


def test_the_crash_verdicts_are_stable_over_five_runs(
    tmp_path: Path, engine: docker.DockerClient
) -> None:
    good, lossy = NOTES_APP / "variants" / "crash.yaml", NOTES_APP / "defects" / "lost-writes.yaml"
    jobs = [(config, n) for n in range(STABILITY_RUNS) for config in (good, lossy)]
    with ThreadPoolExecutor(max_workers=2) as pool:
        audits = list(pool.map(lambda job: crash_only(job[0], tmp_path, engine, job[1]), jobs))
    for (config, n), audit in zip(jobs, audits, strict=True):
        lost = metrics(audit)["Acknowledged writes lost"]
        statuses = audit.statuses()
        if config == good:
            assert audit.code == 0, (n, audit.stderr)
            assert {k: statuses[k] for k in CRASH_CHECKS} == dict.fromkeys(CRASH_CHECKS, "passed")
            assert lost == "0", (n, lost)
        else:
            assert audit.code == 1, (n, audit.stderr)
            assert statuses["crash.acknowledged_writes"] == "failed", (n, statuses)
            assert statuses["crash.integrity"] == "passed", (n, statuses)
            assert int(lost) > 0, (n, lost)


def compose_crash_config(tmp_path: Path, defect: str) -> Path:
    """The compose audit of notes-app with the crash suite on (two rounds) and DEFECT set."""
    compose_app = NOTES_APP.parent / "notes-app-compose"
    config = yaml.safe_load((compose_app / "audit.yaml").read_text())
    (tmp_path / f"{defect}.env").write_text(f"DEFECT={defect}\n")
    config["name"] = f"notes-app-compose-crash-{defect}"
    config["compose"]["file"] = str(compose_app / "compose.yaml")
    config["compose"]["env_files"] = [str(tmp_path / f"{defect}.env")]
    config["expect"]["manifest"] = str(REPO / "expected" / "notes-app.yaml")
    config["suites"] = {"crash": {"enabled": True, "rounds": 2}}
    path = tmp_path / f"{defect}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.mark.parametrize(("defect", "status"), [("none", "passed"), ("lost-writes", "failed")])
def test_the_crash_suite_runs_on_compose_targets_too(
    tmp_path: Path, engine: docker.DockerClient, defect: str, status: str
) -> None:
    audit = crash_only(compose_crash_config(tmp_path, defect), tmp_path, engine, 0)
    assert audit.results["target"]["driver"] == "compose"
    statuses = audit.statuses()
    assert statuses["crash.integrity"] == "passed", statuses
    assert statuses["crash.acknowledged_writes"] == status, statuses
    assert int(metrics(audit)["Writes acknowledged before the kills"]) > 0
    assert " restart notes" in audit.stderr  # started again through compose

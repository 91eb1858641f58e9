"""The auditor's outputs from real audits: redaction, waivers, JUnit, evidence, schema."""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from tests.e2e.conftest import Audit, config_variant, leftovers, persistaudit
from tests.helpers import NOTES_APP, REPO

pytestmark = pytest.mark.docker

SECRET = "pa-secret-7f3c9e1d"
LICENSEE = "Acme Widgets Ltd"


def defect_config(tmp_path: Path, name: str, **changes: object) -> Path:
    return config_variant(tmp_path, NOTES_APP / "defects" / f"{name}.yaml", name, **changes)


def test_secrets_never_reach_any_output(tmp_path: Path) -> None:
    """The licence key is in the environment and the service prints it; so is a listed name."""
    config = defect_config(
        tmp_path,
        "license-blocker",
        env={
            "NOTES_DB_PATH": "/data/notes.db",
            "NOTES_LICENSE_KEY": SECRET,
            "NOTES_LICENSEE": LICENSEE,
        },
        redact=[LICENSEE],
    )
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, "-m", "persistaudit", "run", str(config), "--out", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr  # with its key, the service starts and passes
    outputs = {p.relative_to(out).as_posix(): p.read_text() for p in out.rglob("*") if p.is_file()}
    assert {"results.json", "report.md", "junit.xml", "evidence/startup.log"} <= set(outputs)
    for name, text in {**outputs, "stderr": proc.stderr, "stdout": proc.stdout}.items():
        assert SECRET not in text, f"the licence key leaked into {name}"
        assert LICENSEE not in text, f"the redact: value leaked into {name}"
    assert (
        "notes-app: licence [REDACTED] accepted for [REDACTED]" in outputs["evidence/startup.log"]
    )
    assert json.loads(outputs["results.json"])["target"]["env"]["NOTES_LICENSE_KEY"] == "[REDACTED]"


def test_a_live_waiver_accepts_a_failure_and_an_expired_one_does_not(
    run_audit: Callable[..., Audit], tmp_path: Path
) -> None:
    today = date.today()
    config = defect_config(
        tmp_path,
        "ephemeral-db",
        waivers=[
            {
                "check": "volume.mount",
                "justification": "state moves to /data in release 2.1",
                "accepted_by": "Ada Auditor",
                "expires": (today + timedelta(days=30)).isoformat(),
            },
            {
                "check": "recreate.retention",
                "justification": "accepted for the 2.0 beta",
                "accepted_by": "Ada Auditor",
                "expires": (today - timedelta(days=1)).isoformat(),
            },
        ],
    )
    audit = run_audit(config)
    assert audit.code == 1  # the expired waiver no longer covers recreate.retention
    mount = audit.check("volume.mount")
    assert mount["status"] == "waived"
    assert mount["waiver"]["accepted_by"] == "Ada Auditor"
    recreate = audit.check("recreate.retention")
    assert recreate["status"] == "failed"
    assert recreate["summary"].startswith("waiver expired on ")
    assert "WAIVED until" in audit.report
    assert "state moves to /data in release 2.1" in audit.report
    assert "Waiver expired on" in audit.report


def test_every_output_is_written_and_follows_the_schema(run_audit: Callable[..., Audit]) -> None:
    audit = run_audit(NOTES_APP / "audit.yaml")
    schema = json.loads((REPO / "src/persistaudit/schemas/results-v1.json").read_text())
    jsonschema.validate(audit.results, schema)
    assert sorted(audit.results["evidence_files"]) == [
        "evidence/fresh-schema.yaml",
        "evidence/startup.log",
    ]


def test_short_secret_values_warn_and_damage_nothing(engine: Any, tmp_path: Path) -> None:
    """`DB_PASS: in` once redacted the key finished_at (no results at all), and
    `PASSWORD_MIN_LENGTH: "8"` the image id, the config's sha256 and evidence digests."""
    config = config_variant(
        tmp_path,
        NOTES_APP / "audit.yaml",
        "short-secrets",
        env={"NOTES_DB_PATH": "/data/notes.db", "DB_PASS": "in", "PASSWORD_MIN_LENGTH": "8"},
    )
    out = tmp_path / "out"
    proc = persistaudit("run", str(config), "--out", str(out), "-k", "fresh_install")
    assert not leftovers(engine, proc.pid)  # type: ignore[attr-defined]
    assert proc.returncode == 0, proc.stderr
    assert "warning: the value of environment variable DB_PASS is shorter than 6" in proc.stderr
    assert "environment variable PASSWORD_MIN_LENGTH is shorter than 6" in proc.stderr
    results = json.loads((out / "results.json").read_text())
    assert {"started_at", "finished_at", "target", "environment"} <= set(results)
    # Not compared with the engine's tag: other audits on a shared engine may rebuild it.
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", results["target"]["image_id"])
    sha = hashlib.sha256(config.read_bytes()).hexdigest()
    assert results["environment"]["config_sha256"] == sha
    assert results["target"]["env"]["DB_PASS"] == "[REDACTED]"
    assert results["evidence_files"]
    for name, digest in results["evidence_files"].items():
        assert hashlib.sha256((out / name).read_bytes()).hexdigest() == digest

"""A real audit's report folder, as an auditor receives it: read, signed, checked with stock
tools. The target is the good notes-app against a manifest that promises another schema
(the golden drift case), so the report has schema differences to show."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.e2e.conftest import persistaudit
from tests.helpers import REPO

pytestmark = pytest.mark.docker

DRIFT = REPO / "tests" / "golden" / "drift" / "audit.yaml"


def test_a_real_report_folder_reads_well_and_checks_with_stock_tools(tmp_path: Path) -> None:
    ssh_keygen, sha256sum = shutil.which("ssh-keygen"), shutil.which("sha256sum")
    if ssh_keygen is None or sha256sum is None:
        pytest.skip("ssh-keygen or sha256sum is not installed: run scripts/setup.sh tools")
    out = tmp_path / "report"
    run = persistaudit("run", str(DRIFT), "--out", str(out), tmpdir=tmp_path)
    assert run.returncode == 1, run.stderr  # FAIL: the schema drifted
    results = json.loads((out / "results.json").read_text())
    # Relative to the folder of results.json, or to the config's where the two share only /.
    apart = os.path.commonpath([DRIFT.parent, out]) == os.path.sep
    assert results["target"]["config"] == (DRIFT.name if apart else os.path.relpath(DRIFT, out))
    assert results["target"].get("paths_relative_to") == ("configuration" if apart else None)
    report = (out / "report.md").read_text()
    assert re.search(r"(?<![\w.])/(work|tmp|home|root)/", report) is None  # no host path
    assert re.search(r"&(#\d+|[a-z]+);", report) is None
    assert "| Difference | Name | Expected | Actual |" in report
    assert "| changed | users.email | collation: NOCASE | collation: BINARY |" in report
    findings = report.split("Key findings:")[1].split("## ")[0]
    assert "**FAIL** `fresh_install.schema`" in findings
    assert "**PASS**" not in findings

    key = tmp_path / "auditor"
    assert persistaudit("keygen", str(key)).returncode == 0
    signed = persistaudit("sign", str(out), "--key", str(key), "--auditor", "A", "--role", "QA")
    assert signed.returncode == 0, signed.stderr
    allowed = tmp_path / "allowed_signers"
    allowed.write_text(f'qa@example.org namespaces="persistaudit" {Path(f"{key}.pub").read_text()}')
    sums = subprocess.run(
        [sha256sum, "--strict", "-c", "SHA256SUMS"], cwd=out, capture_output=True, check=False
    )
    assert sums.returncode == 0, sums.stdout
    command = [ssh_keygen, "-Y", "verify", "-f", str(allowed), "-I", "qa@example.org"]
    with (out / "SHA256SUMS").open("rb") as message:
        good = subprocess.run(
            [*command, "-n", "persistaudit", "-s", str(out / "SHA256SUMS.sig")],
            stdin=message,
            capture_output=True,
            check=False,
        )
    assert good.returncode == 0, good.stderr
    verified = persistaudit("verify", str(out), "--allowed-signers", str(allowed))
    assert verified.returncode == 0, verified.stderr
    assert "for qa@example.org" in verified.stdout
    with (out / "evidence" / "startup.log").open("a") as log:
        log.write("edited after signing\n")
    tampered = persistaudit("verify", str(out), "--allowed-signers", str(allowed))
    assert tampered.returncode == 1
    assert tampered.stderr.strip() == ("INVALID: evidence/startup.log: changed since it was signed")

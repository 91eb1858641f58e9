"""`persistaudit run` in a pipeline: copies of the outputs, --format json, GitHub Actions,
--quiet, and the JUnit failure bodies; the audit itself is faked (no Docker)."""

from __future__ import annotations

import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from persistaudit import ci, cli, engine, runtime
from persistaudit.junit import plain_table, render_junit
from persistaudit.outputs import write_outputs
from persistaudit.redact import Redactor
from tests.unit.test_report import results

SECRET = "hunter2"  # GOOD_CONFIG's API_TOKEN


def failing_results() -> dict[str, Any]:
    """A FAIL and a BLOCKED whose texts quote the secret and GitHub's special characters."""
    doc = results(verdict="FAIL")
    doc["checks"][0].update(
        status="failed",
        summary=f"2 of 3 tables missing: 100% lost, token {SECRET}\nsecond line, a: b",
        evidence=[
            {
                "title": "column differences (1)",
                "content": "",
                "kind": "table",
                "columns": ["Difference", "Name", "What changed"],
                "rows": [["changed", "users.email", f"collation NOCASE -> {SECRET}"]],
            }
        ],
    )
    doc["checks"][1].update(status="blocked", summary="target did not start (exited)")
    doc["metrics"][0].update(achieved=f"50% | {SECRET}", status="failed")
    return doc


@pytest.fixture
def fake_audit(monkeypatch: pytest.MonkeyPatch) -> Callable[[dict[str, Any]], None]:
    """Replace the engine and the suites: the 'suites' stage this results document."""

    def use(doc: dict[str, Any]) -> None:
        def suites(
            config: Path,
            out: Path,
            select: str | None,
            team_checks: tuple[Path, ...] = (),
            keep: bool = False,
        ) -> int:
            print("a stray print from inside the audit")  # must never reach stdout as JSON
            write_outputs(out, json.loads(json.dumps(doc)), {}, Redactor({"API_TOKEN": SECRET}))
            return 1 if doc["verdict"] == "FAIL" else 0

        monkeypatch.setattr(engine, "connect", lambda: object())
        monkeypatch.setattr(runtime, "prepare", lambda target, client: None)
        monkeypatch.setattr(cli, "_run_suites", suites)

    return use


def invoke(*args: str, env: dict[str, str] | None = None) -> Result:
    base = {"GITHUB_ACTIONS": "", "GITHUB_STEP_SUMMARY": ""}
    return CliRunner().invoke(cli.main, ["run", *args], env=base | (env or {}))


def test_copies_land_where_the_pipeline_wants_them(
    config_dir: Path, tmp_path: Path, fake_audit: Callable[[dict[str, Any]], None]
) -> None:
    fake_audit(failing_results())
    out = tmp_path / "out"
    junit, res, html = tmp_path / "j.xml", tmp_path / "r.json", tmp_path / "r.html"
    result = invoke(
        str(config_dir / "audit.yaml"),
        *("--out", str(out), "--junit", str(junit), "--json", str(res), "--html", str(html)),
    )
    assert result.exit_code == 1, result.output
    assert junit.read_bytes() == (out / "junit.xml").read_bytes()
    assert res.read_bytes() == (out / "results.json").read_bytes()
    assert html.read_text().startswith("<!DOCTYPE html>")
    assert "FAIL: " in result.stderr
    assert "FAIL" not in result.stdout  # text mode: the verdict line is on stderr
    assert not list(tmp_path.glob(".*.partial"))


def test_format_json_prints_one_document_and_nothing_else(
    config_dir: Path, tmp_path: Path, fake_audit: Callable[[dict[str, Any]], None]
) -> None:
    fake_audit(failing_results())
    out = tmp_path / "out"
    result = invoke(
        str(config_dir / "audit.yaml"), "--out", str(out), "--format", "json", "--junit",
        str(tmp_path / "j.xml"),
        env={"GITHUB_ACTIONS": "true"},
    )  # fmt: skip
    assert result.exit_code == 1
    doc = json.loads(result.stdout)  # the whole of stdout is the document
    assert doc["schema"] == "persistaudit/run/v1"
    assert (doc["verdict"], doc["exit_code"], doc["error"]) == ("FAIL", 1, None)
    assert doc["files"]["results.json"] == str(out / "results.json")
    assert doc["files"]["junit"] == str(tmp_path / "j.xml")
    assert [c["status"] for c in doc["checks"]] == ["failed", "blocked"]
    assert SECRET not in result.stdout
    # The stray print, the verdict line and the annotations went to stderr.
    assert "a stray print" in result.stderr
    assert "::error title=fresh_install.startup::" in result.stderr


def test_format_json_on_a_usage_error_is_still_one_document(config_dir: Path) -> None:
    result = invoke(str(config_dir / "absent.yaml"), "--format", "json")
    assert result.exit_code == 2
    doc = json.loads(result.stdout)
    assert doc["verdict"] is None
    assert doc["exit_code"] == 2
    assert "absent.yaml: file not found" in doc["error"]
    assert result.stderr.startswith("persistaudit: error: ")


def test_an_unwritable_copy_is_exit_2_before_the_audit(
    config_dir: Path, tmp_path: Path, fake_audit: Callable[[dict[str, Any]], None]
) -> None:
    fake_audit(failing_results())
    result = invoke(str(config_dir / "audit.yaml"), "--junit", str(tmp_path / "no" / "j.xml"))
    assert result.exit_code == 2
    assert "does not exist" in result.stderr
    assert not (tmp_path / "out").exists()


def test_github_annotations_and_step_summary_are_redacted(
    config_dir: Path, tmp_path: Path, fake_audit: Callable[[dict[str, Any]], None]
) -> None:
    fake_audit(failing_results())
    summary = tmp_path / "summary.md"
    summary.write_text("earlier step\n")
    env = {"GITHUB_ACTIONS": "true", "GITHUB_STEP_SUMMARY": str(summary)}
    result = invoke(str(config_dir / "audit.yaml"), "--out", str(tmp_path / "o"), env=env)
    assert result.exit_code == 1
    errors = [line for line in result.stdout.splitlines() if line.startswith("::error")]
    assert errors == [
        "::error title=fresh_install.startup::2 of 3 tables missing: 100%25 lost, token "
        "[REDACTED]%0Asecond line, a: b",
        "::error title=restart.retention::target did not start (exited)",
    ]
    text = summary.read_text()
    assert text.startswith("earlier step\n## persistaudit: FAIL for demo")  # appended
    assert "| Data retention after restart | 100% | 50% \\| [REDACTED] | FAIL |" in text
    assert "- **FAIL** `fresh_install.startup`" in text
    assert "- **BLOCKED** `restart.retention`: target did not start" in text
    assert SECRET not in result.output + text


def test_off_github_nothing_is_annotated(
    config_dir: Path, tmp_path: Path, fake_audit: Callable[[dict[str, Any]], None]
) -> None:
    fake_audit(failing_results())
    summary = tmp_path / "summary.md"
    env = {"GITHUB_STEP_SUMMARY": str(summary)}
    result = invoke(str(config_dir / "audit.yaml"), "--out", str(tmp_path / "o"), env=env)
    assert "::error" not in result.output
    assert not summary.exists()


def test_escaping_follows_githubs_rules() -> None:
    assert ci.escape_data("100%\r\nx: y, z") == "100%25%0D%0Ax: y, z"
    assert ci.escape_property("a:b,c%\n") == "a%3Ab%2Cc%25%0A"


def test_annotations_redact_an_unredacted_document_too() -> None:
    lines = ci.github_annotations(failing_results(), Redactor({"API_TOKEN": SECRET}))
    assert len(lines) == 2
    assert SECRET not in "".join(lines)
    summary = ci.step_summary(failing_results(), Redactor({"API_TOKEN": SECRET}))
    assert SECRET not in summary


def test_a_passing_summary_says_nothing_failed() -> None:
    text = ci.step_summary(results(), Redactor({}))
    assert "**Verdict: PASS** (2 pass)" in text
    assert "No check failed or was blocked." in text
    assert ci.github_annotations(results(), Redactor({})) == []


def test_quiet_prints_only_the_verdict(
    config_dir: Path, tmp_path: Path, fake_audit: Callable[[dict[str, Any]], None]
) -> None:
    fake_audit(results())
    result = invoke(str(config_dir / "audit.yaml"), "--out", str(tmp_path / "o"), "--quiet")
    assert result.exit_code == 0
    assert "auditing" not in result.stderr
    assert result.stderr.strip().splitlines()[-1] == f"PASS: {tmp_path / 'o' / 'report.md'}"


def test_junit_failure_bodies_hold_the_evidence_tables() -> None:
    root = ET.fromstring(render_junit(failing_results()))
    failure = root.find(".//failure")
    assert failure is not None
    assert failure.text is not None
    lines = failure.text.splitlines()
    assert lines[0] == "column differences (1):"
    assert lines[1].split() == ["Difference", "Name", "What", "changed"]
    assert set(lines[2]) == {"-", " "}
    assert lines[3].split()[:2] == ["changed", "users.email"]


def test_plain_tables_escape_cells_and_cut_long_ones() -> None:
    text = plain_table(["a", "b"], [["x\ny", "\x1b[2J"], ["z" * 500]])
    assert text.splitlines()[2].split() == ["x\\ny", "\\x1b[2J"]
    assert len(text.splitlines()) == 4  # a cell cannot add a line
    assert max(map(len, text.splitlines())) < 200


def test_junit_is_valid_xml_whatever_the_evidence_holds() -> None:
    doc = failing_results()
    doc["checks"][0]["summary"] = "bad \x00\x1b byte"
    doc["checks"][0]["evidence"].append({"title": "log", "content": "a\x07b", "kind": "log"})
    root = ET.fromstring(render_junit(doc))
    failure = root.find(".//failure")
    assert failure is not None
    assert "a\\x07b" in (failure.text or "")
    assert failure.get("message") == "bad \\x00\\x1b byte"


def test_json_mode_sends_even_a_subprocess_stdout_to_stderr() -> None:
    """The descriptor itself is redirected, not only sys.stdout: a child's output too."""
    code = (
        "import os, subprocess, sys\n"
        "from persistaudit.cli import _stdout_to_stderr\n"
        "with _stdout_to_stderr(True):\n"
        "    print('from python')\n"
        "    os.write(1, b'from the descriptor\\n')\n"
        "    subprocess.run(['echo', 'from a child'], check=True)\n"
        "print('the document')\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert proc.stdout == "the document\n"
    assert proc.stderr.splitlines() == ["from python", "from the descriptor", "from a child"]

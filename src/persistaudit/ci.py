"""CI systems: GitHub Actions annotations and the job's step summary, from the results.

Everything here is made from a results document that has gone through the Redactor again
(results.json is redacted when written; once more costs little and guards the path), so no
secret reaches an annotation or a summary. GitLab needs nothing here: it reads junit.xml as
a test report artifact.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from persistaudit.display import printable
from persistaudit.redact import Redactor
from persistaudit.report import STATUS_MARK, md_cell, md_text

ANNOTATED = ("failed", "blocked", "error")  # the statuses that get an ::error annotation
ORDER = {"failed": 0, "error": 1, "blocked": 2}
MAX_FINDINGS = 50  # key findings in the step summary (GitHub keeps 1 MiB of it per step)
MAX_METRICS = 100


def on_github(env: Mapping[str, str] | None = None) -> bool:
    env = os.environ if env is None else env
    return env.get("GITHUB_ACTIONS") == "true"


def escape_data(text: str) -> str:
    """A workflow command's message, as GitHub's toolkit escapes it."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    """A workflow command's property value (title=...): also ':' and ','."""
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


def github_annotations(results: dict[str, Any], redactor: Redactor) -> list[str]:
    """One `::error` workflow command per failed, blocked or errored check, in check order.

    Title: the check id; message: its one-line summary. Other control characters (an escape
    sequence from a table name) are shown escaped, so none can act on the log.
    """
    lines = []
    for check in redactor.deep(results)["checks"]:
        if check["status"] not in ANNOTATED:
            continue
        title = printable(escape_property(str(check["id"])), backslash=False)
        message = printable(escape_data(str(check["summary"])), backslash=False)
        lines.append(f"::error title={title}::{message}")
    return lines


def step_summary(results: dict[str, Any], redactor: Redactor, report: str = "") -> str:
    """The report's summary as GitHub renders it: verdict, metrics table, key findings."""
    doc = redactor.deep(results)
    checks = doc["checks"]
    counts = {s: sum(c["status"] == s for c in checks) for s in STATUS_MARK}
    tally = ", ".join(f"{n} {STATUS_MARK[s].lower()}" for s, n in counts.items() if n)
    lines = [
        f"## persistaudit: {md_text(doc['verdict'])} for {md_text(doc['target']['name'])}",
        "",
        f"**Verdict: {md_text(doc['verdict'])}** ({tally or 'no checks'})"
        + (f". Report: {md_text(report)}" if report else ""),
        "",
    ]
    metrics = doc["metrics"]
    if metrics:
        lines += ["| Metric | Target | Achieved | Status |", "|---|---|---|---|"]
        lines += [
            f"| {md_cell(m['name'])} | {md_cell(m['target'])} | {md_cell(m['achieved'])} "
            f"| {STATUS_MARK.get(m['status'], md_cell(m['status']))} |"
            for m in metrics[:MAX_METRICS]
        ]
        if len(metrics) > MAX_METRICS:
            lines.append(f"\n{len(metrics) - MAX_METRICS} more metrics in results.json")
        lines.append("")
    findings = sorted(
        (c for c in checks if c["status"] in ANNOTATED), key=lambda c: ORDER[c["status"]]
    )
    lines.append("### Key findings")
    lines.append("")
    if not findings:
        lines.append("No check failed or was blocked.")
    for check in findings[:MAX_FINDINGS]:
        lines.append(
            f"- **{STATUS_MARK[check['status']]}** `{md_cell(check['id'])}`: "
            f"{md_text(check['summary'])}"
        )
    if len(findings) > MAX_FINDINGS:
        lines.append(f"- ... and {len(findings) - MAX_FINDINGS} more in results.json")
    return "\n".join(lines) + "\n"

"""JUnit XML for CI systems: one test case per check, from the results document.

A check the catalog knows carries its title and severity as test case properties. A failure's
body holds its evidence as plain text, tables included: a CI system's test view is often the
only place a developer reads it.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from typing import Any

from persistaudit import catalog
from persistaudit.display import printable

MAX_ROWS = 200  # rows of one evidence table in a failure body (results.json has them all)
MAX_CELL = 120  # characters of one cell
# Characters XML 1.0 cannot carry at all (ElementTree would write them, making the file
# unreadable to every CI system): shown escaped instead.
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def render_junit(results: dict[str, Any]) -> str:
    """Failed checks are <failure>; blocked ones and internal errors <error>; skipped <skipped>.

    The <error> type tells them apart: "blocked" (the target or engine stopped the check) or
    "internal-error" (a bug inside persistaudit; the text is the traceback's evidence).
    """
    checks = results["checks"]
    counts = {
        "tests": len(checks),
        "failures": sum(c["status"] == "failed" for c in checks),
        "errors": sum(c["status"] in ("blocked", "error") for c in checks),
        "skipped": sum(c["status"] == "skipped" for c in checks),
    }
    total = sum(float(c.get("duration_s", 0)) for c in checks)
    attrs = {k: str(v) for k, v in counts.items()} | {"time": f"{total:.2f}"}
    root = ET.Element("testsuites", {"name": "persistaudit", **attrs})
    suite = ET.SubElement(
        root,
        "testsuite",
        {"name": str(results["target"]["name"]), "timestamp": str(results["started_at"]), **attrs},
    )
    props = ET.SubElement(suite, "properties")
    ET.SubElement(props, "property", name="verdict", value=str(results["verdict"]))
    for check in checks:
        case = ET.SubElement(
            suite,
            "testcase",
            classname=f"persistaudit.{check['suite']}",
            name=check["id"],
            time=f"{float(check.get('duration_s', 0)):.2f}",
        )
        entry = catalog.lookup(check["id"])
        if entry is not None:
            case_props = ET.SubElement(case, "properties")
            ET.SubElement(case_props, "property", name="title", value=entry.title)
            ET.SubElement(case_props, "property", name="severity", value=entry.severity)
        status, summary = check["status"], xml_safe(check["summary"])
        detail = "\n\n".join(evidence_text(e) for e in check["evidence"])
        if status == "failed":
            ET.SubElement(case, "failure", message=summary, type="failed").text = detail
        elif status == "blocked":
            ET.SubElement(case, "error", message=summary, type="blocked").text = detail
        elif status == "error":
            ET.SubElement(case, "error", message=summary, type="internal-error").text = detail
        elif status == "skipped":
            ET.SubElement(case, "skipped", message=summary)
        elif status == "waived":
            waiver = check.get("waiver") or {}
            ET.SubElement(case, "system-out").text = (
                f"WAIVED until {waiver.get('expires')} by {waiver.get('accepted_by')}: "
                f"{waiver.get('justification')}\n{summary}"
            )
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


def evidence_text(evidence: dict[str, Any]) -> str:
    """One piece of evidence as plain text: its title, its content, its table, its file."""
    parts = [f"{evidence['title']}:"]
    if evidence.get("content"):
        parts.append(str(evidence["content"]))
    if evidence.get("columns") or evidence.get("rows"):
        parts.append(plain_table(evidence.get("columns") or [], evidence.get("rows") or []))
    if evidence.get("file"):
        parts.append(f"(whole file: {evidence['file']} in the output folder)")
    return xml_safe("\n".join(parts))


def xml_safe(text: str) -> str:
    return _NOT_XML.sub(lambda m: printable(m.group()), text)


def plain_table(columns: list[str], rows: list[list[Any]]) -> str:
    """Columns aligned with spaces, a rule under the header; cells on one line each.

    Cells come from the audited database (names, SQL): control characters are shown escaped,
    so that no cell can add a line or a column of its own.
    """
    shown = rows[:MAX_ROWS]
    table = [[_cell(c) for c in columns], *([_cell(c) for c in row] for row in shown)]
    width = max((len(r) for r in table), default=0)
    table = [r + [""] * (width - len(r)) for r in table]
    widths = [max(len(r[i]) for r in table) for i in range(width)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in table]
    if columns:
        lines.insert(1, "  ".join("-" * w for w in widths))
    if len(rows) > MAX_ROWS:
        lines.append(f"[... {len(rows) - MAX_ROWS:,} more rows in results.json]")
    return "\n".join(lines)


def _cell(value: Any) -> str:
    text = printable(value)
    return text if len(text) <= MAX_CELL else text[: MAX_CELL - 3] + "..."

"""JUnit XML for CI systems: one test case per check, from the results document.

A check the catalog knows carries its title and severity as test case properties.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any

from persistaudit import catalog


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
        status, summary = check["status"], check["summary"]
        detail = "\n\n".join(f"{e['title']}:\n{e['content']}" for e in check["evidence"])
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

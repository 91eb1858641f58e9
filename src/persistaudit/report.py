"""Render the auditor's report from a results document (never from live objects).

The same results give the same report byte for byte: every time in it comes from the
results, none from the clock.
"""

from __future__ import annotations

import re
from typing import Any

import jinja2

from persistaudit.assessment import (
    PASSING_RECOMMENDATIONS,
    RESIDUAL_RISKS,
    SUITE_DONE,
    SUITE_TITLES,
    recommendation,
    risk,
)
from persistaudit.display import printable
from persistaudit.resources import bundled

STATUS_MARK = {
    "passed": "PASS",
    "failed": "FAIL",
    "blocked": "BLOCKED",
    "skipped": "SKIPPED",
    "waived": "WAIVED",
}
ORDER = {"failed": 0, "blocked": 1, "waived": 2, "skipped": 3, "passed": 4}

_env: jinja2.Environment | None = None


def md_cell(value: Any) -> str:
    """Text safe inside a Markdown table cell: no pipes, newlines, backticks or HTML."""
    text = str(value)
    text = text.replace("\\", "\\\\").replace("|", "\\|").replace("`", "\\`")
    text = text.replace("<", "&lt;").replace(">", "&gt;")
    return printable(re.sub(r"\s*\n\s*", " ", text).strip(), backslash=False)


def md_text(value: Any) -> str:
    """Text safe in a Markdown paragraph or list item: HTML is shown, not run, and no line
    of its own can start (a carriage return or escape sequence is shown escaped)."""
    text = re.sub(r"\s*\n\s*", " ", str(value).replace("<", "&lt;").replace(">", "&gt;"))
    return printable(text, backslash=False)


def fence(value: Any) -> str:
    """A fenced code block that its content cannot close."""
    text = str(value).rstrip("\n")
    longest = max((len(m) for m in re.findall(r"`{3,}", text)), default=2)
    ticks = "`" * max(3, longest + 1)
    return f"{ticks}\n{text}\n{ticks}"


def environment() -> jinja2.Environment:
    global _env
    if _env is None:
        _env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(str(bundled("templates"))),
            undefined=jinja2.StrictUndefined,
            autoescape=False,  # Markdown: escaping is explicit, through the filters
            keep_trailing_newline=True,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        _env.filters.update(cell=md_cell, text=md_text, fence=fence)
    return _env


def report_context(
    results: dict[str, Any], signoff: dict[str, Any] | None = None
) -> dict[str, Any]:
    checks = results["checks"]
    suites: dict[str, list[dict[str, Any]]] = {}
    for check in checks:
        suites.setdefault(check["suite"], []).append(check)
    problems = sorted(
        (c for c in checks if c["status"] in ("failed", "blocked")),
        key=lambda c: ORDER[c["status"]],
    )
    waived = [c for c in checks if c["status"] == "waived"]
    return {
        "r": results,
        "mark": STATUS_MARK,
        "suites": [
            (SUITE_TITLES.get(s, s), s, SUITE_DONE.get(s, ""), cs) for s, cs in suites.items()
        ],
        "key_findings": sorted(checks, key=lambda c: ORDER[c["status"]]),
        "risks": [(c, risk(c)) for c in problems],
        "residual": RESIDUAL_RISKS,
        "recommendations": [
            (c, recommendation(c, results["target"]))
            for c in problems + waived
            if c["status"] != "blocked" or c["id"] == "fresh_install.startup"
        ],
        "blocked_by_startup": [
            c["id"]
            for c in problems
            if c["status"] == "blocked" and c["id"] != "fresh_install.startup"
        ],
        "passing_recommendations": PASSING_RECOMMENDATIONS,
        "validated": [c for c in checks if c["status"] == "passed"],
        "failed": [c for c in checks if c["status"] == "failed"],
        "blocked": [c for c in checks if c["status"] == "blocked"],
        "waived": waived,
        "not_tested": [c for c in checks if c["status"] == "skipped"],
        "files": results.get("evidence_files", {}),
        "signoff": signoff,
    }


def render_markdown(results: dict[str, Any], signoff: dict[str, Any] | None = None) -> str:
    """The auditor's report; signoff (who signed, when, with which key) fills its last block."""
    return environment().get_template("report.md.j2").render(**report_context(results, signoff))


def render_html(results: dict[str, Any], signoff: dict[str, Any] | None = None) -> str:
    """The same report as one standalone HTML page; raw HTML in the Markdown is not passed."""
    from markdown_it import MarkdownIt

    markdown = MarkdownIt("commonmark", {"html": False}).enable("table")
    body = markdown.render(render_markdown(results, signoff))
    title = f"Persistence validation report: {results['target']['name']}"
    return environment().get_template("report.html.j2").render(title=title, body=body)

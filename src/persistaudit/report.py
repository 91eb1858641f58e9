"""Render the auditor's report from a results document (never from live objects).

The same results give the same report byte for byte: every time in it comes from the
results, none from the clock.
"""

from __future__ import annotations

import re
from typing import Any

import jinja2

from persistaudit.resources import bundled

STATUS_MARK = {"passed": "PASS", "failed": "FAIL", "blocked": "BLOCKED", "skipped": "SKIPPED"}
SUITE_TITLES = {
    "fresh_install": "Fresh install",
    "volume": "Volume and mount",
    "restart": "Restart persistence",
    "recreate": "Re-create persistence",
}
# Fixed text per check: the risk a failure leaves and what to do about it.
RISKS: dict[str, tuple[str, str, str]] = {
    "fresh_install.startup": (
        "The service cannot be deployed or validated: startup is blocked.",
        "CRITICAL",
        "Fix the cause quoted from the logs (for a licence check: set the variable, or ship an "
        "evaluation mode), then re-run the audit.",
    ),
    "fresh_install.schema": (
        "Fresh installs lack tables the release needs: features fail at first use.",
        "CRITICAL",
        "Register every migration/model in the initialisation path and keep the manifest "
        "under expected/ in step with the release.",
    ),
    "fresh_install.integrity": (
        "The database file is corrupt.",
        "CRITICAL",
        "Restore from backup; find the writer that corrupts (unsafe copies, network filesystems).",
    ),
    "fresh_install.foreign_keys": (
        "Rows point at missing parents: silent data inconsistency.",
        "HIGH",
        "Enable PRAGMA foreign_keys=ON on every connection and repair the orphaned rows.",
    ),
    "fresh_install.journal_mode": (
        "The journal mode is not the promised one: concurrency and crash behaviour differ.",
        "MEDIUM",
        "Set PRAGMA journal_mode at database creation, as the release promises.",
    ),
    "volume.mount": (
        "The database is not on persistent storage: data is lost when the container is "
        "removed or re-created.",
        "CRITICAL",
        "Put the database's folder (not the file alone) on a named volume or bind mount.",
    ),
    "restart.retention": (
        "Data written before a restart is lost or altered.",
        "CRITICAL",
        "Make sure writes are committed and the database lives on the volume.",
    ),
    "recreate.retention": (
        "Data is lost when the container is removed and re-created (upgrades, redeploys).",
        "CRITICAL",
        "Store the database under the mounted volume path; verify the path the service uses.",
    ),
}
RESIDUAL_RISKS = [
    "Backups and restores were not verified.",
    "Behaviour under load and after a crash (kill -9 during writes) was not tested.",
    "Upgrades from the previous release's database were not tested.",
    "Host filesystem and volume driver failures are outside this audit.",
]

_env: jinja2.Environment | None = None


def md_cell(value: Any) -> str:
    """Text safe inside a Markdown table cell: no pipes, newlines, backticks or HTML."""
    text = str(value)
    text = text.replace("\\", "\\\\").replace("|", "\\|").replace("`", "\\`")
    text = text.replace("<", "&lt;").replace(">", "&gt;")
    return re.sub(r"\s*\n\s*", " ", text).strip()


def md_text(value: Any) -> str:
    """Text safe in a Markdown paragraph or list item: HTML is shown, not run."""
    return str(value).replace("<", "&lt;").replace(">", "&gt;")


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


def report_context(results: dict[str, Any]) -> dict[str, Any]:
    checks = results["checks"]
    suites: dict[str, list[dict[str, Any]]] = {}
    for check in checks:
        suites.setdefault(check["suite"], []).append(check)
    problems = [c for c in checks if c["status"] in ("failed", "blocked")]
    problems.sort(key=lambda c: c["status"] != "failed")
    return {
        "r": results,
        "mark": STATUS_MARK,
        "suites": [(SUITE_TITLES.get(s, s), s, cs) for s, cs in suites.items()],
        "key_findings": problems + [c for c in checks if c["status"] == "passed"],
        "risks": [_risk(c) for c in problems],
        "residual": RESIDUAL_RISKS,
        "validated": [c for c in checks if c["status"] == "passed"],
        "failed": [c for c in checks if c["status"] == "failed"],
        "blocked": [c for c in checks if c["status"] == "blocked"],
        "not_tested": [c for c in checks if c["status"] == "skipped"],
    }


def _risk(check: dict[str, Any]) -> tuple[dict[str, Any], tuple[str, str, str]]:
    """A failed check leaves its risk; a blocked one leaves it unverified."""
    risk, severity, mitigation = RISKS.get(
        check["id"], ("Not classified.", "MEDIUM", "Investigate the finding.")
    )
    if check["status"] == "blocked" and check["id"] != "fresh_install.startup":
        return check, (
            f"Unverified: {risk}",
            severity,
            "Resolve the blocker, then re-run the audit.",
        )
    return check, (risk, severity, mitigation)


def render_markdown(results: dict[str, Any], template: str = "report.md.j2") -> str:
    return environment().get_template(template).render(**report_context(results))

"""Render the auditor's report from a results document (never from live objects).

The same results give the same report byte for byte: every time in it comes from the
results, none from the clock.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import re
import shlex
import stat
import threading
from pathlib import Path
from typing import Any

import jinja2

from persistaudit import catalog, relpaths, selection
from persistaudit.assessment import (
    passing_recommendations,
    recommendation,
    residual_risks,
    risk,
    untested_areas,
)
from persistaudit.display import printable
from persistaudit.resources import bundled

STATUS_MARK = {
    "passed": "PASS",
    "failed": "FAIL",
    "blocked": "BLOCKED",
    "skipped": "SKIPPED",
    "waived": "WAIVED",
    "error": "ERROR",
}
ORDER = {"failed": 0, "error": 1, "blocked": 2, "waived": 3, "skipped": 4, "passed": 5}

# What one report shows of a results document. A target can write anything into its logs,
# and Markdown rendering (pure Python) takes time with the length of the text, so each text
# is cut, and the report as a whole has a budget; results.json keeps everything.
MAX_TEXT = 2_000  # characters of a summary, title, table cell or other value
MAX_EXCERPT = 20_000  # characters of one evidence excerpt
MAX_ROWS = 200  # rows of one evidence table
MAX_REPORT_TEXT = 250_000  # characters of all the values in one report
MIN_COST = 16  # what a short value counts against the budget (a line costs more than its text)
KEEP = frozenset({"status", "kind", "verdict", "schema"})  # enumerations the report branches on
CUT = "[cut]"
SPENT = (
    f"[... the report's limit of {MAX_REPORT_TEXT:,} characters is reached: the rest is cut; "
    "results.json has it all]"
)

_envs: dict[bool, jinja2.Environment] = {}
_envs_lock = threading.Lock()  # prepare() may build one in a thread of its own
MARKDOWN_TEMPLATE = "report.md.j2"
_compiling = threading.Lock()


def _cut(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return (
        f"{text[:limit]}\n[... {len(text) - limit:,} more characters cut from the report; "
        "results.json has them all]"
    )


class _Bounds:
    """Cuts a results document down to what one report shows, in document order."""

    def __init__(self) -> None:
        self.left = MAX_REPORT_TEXT

    def value(self, value: Any, key: str = "") -> Any:
        if isinstance(value, str):
            return self.text(value, key)
        if isinstance(value, dict):
            return {k: self.value(v, k) for k, v in value.items()}
        if isinstance(value, list):
            return self.items(value, key)
        return value

    def text(self, value: str, key: str) -> str:
        if key in KEEP:
            return value
        if self.left <= 0:
            return CUT if value else value
        limit = min(MAX_EXCERPT if key == "content" else MAX_TEXT, self.left)
        self.left -= max(min(len(value), limit), MIN_COST)
        return _cut(value, limit)

    def items(self, value: list[Any], key: str) -> list[Any]:
        if key == "evidence" and self.left <= 0 and value:
            return [{"title": SPENT, "content": "", "kind": "output"}]
        shown = [self.value(v) for v in (value[:MAX_ROWS] if key == "rows" else value)]
        if key == "rows" and len(value) > MAX_ROWS:
            cut = len(value) - MAX_ROWS
            shown.append(
                [f"[... {cut:,} more rows cut from the report; results.json has them all]"]
            )
        return shown


def bounded(results: dict[str, Any]) -> dict[str, Any]:
    """The results as the report shows them: long texts and tables cut, with a note."""
    return dict(_Bounds().value(results))


def md_cell(value: Any, inert: bool = False) -> str:
    """Text safe inside a Markdown table cell: no pipes, newlines, backticks or HTML.

    Escaped the Markdown way (`\\<`, `\\|`), never with HTML entities: report.md reads as
    written in a text editor, and renders the same on a Markdown site.
    """
    text = str(value)
    text = text.replace("\\", "\\\\").replace("|", "\\|").replace("`", "\\`")
    text = _escape_inline(text, inert)
    return printable(re.sub(r"\s*\n\s*", " ", text).strip(), backslash=False)


def md_text(value: Any, inert: bool = False) -> str:
    """Text safe in a Markdown paragraph or list item: HTML is shown, not run, and no line
    of its own can start (a carriage return or escape sequence is shown escaped), nor can
    it open a heading, quote or list where it starts a line.

    inert (for the HTML page) also escapes emphasis, link and entity punctuation: the text
    shows as written, and Markdown parsing stays linear however hostile the text.
    """
    text = str(value).replace("\\", "\\\\")  # `\\:` shows as written, not as `:`
    text = re.sub(r"\s*\n\s*", " ", _escape_inline(text, inert)).strip()
    return printable(_BLOCK_START.sub(_escape_block, text, count=1), backslash=False)


def md_code(value: Any, table: bool = True) -> str:
    """A code span holding value as written (on one line, control characters escaped).

    Inside a code span nothing is an escape, so nothing but a table's pipe is escaped: the
    span's backticks outnumber any run of backticks in the text.
    """
    text = printable(re.sub(r"\s*\n\s*", " ", str(value)).strip(), backslash=False)
    if not text:
        return ""
    if table:
        text = text.replace("|", "\\|")
    ticks = "`" * (max((len(m) for m in re.findall(r"`+", text)), default=0) + 1)
    pad = " " if text[0] == "`" or text[-1] == "`" else ""
    return f"{ticks}{pad}{text}{pad}{ticks}"


_INERT = re.compile(r"[*_\[\]!~&]")
_ENTITY = re.compile(r"&(?=#?[0-9A-Za-z]+;)")  # what a Markdown renderer would decode
# A line start that opens a block: a heading, quote, list item, rule or setext underline.
_BLOCK_START = re.compile(r"^(?:[#>+\-*=_]|\d{1,9}[.)])")


def _escape_block(match: re.Match[str]) -> str:
    marker = match.group()
    return f"{marker[:-1]}\\{marker[-1]}"


def _escape_inline(text: str, inert: bool) -> str:
    """HTML cannot start (`\\<`), and no entity is decoded (`\\&amp;` shows as written)."""
    text = _INERT.sub(r"\\\g<0>", text) if inert else _ENTITY.sub(r"\\&", text)
    return text.replace("<", "\\<")


def fence(value: Any) -> str:
    """A fenced code block that its content cannot close."""
    text = str(value).rstrip("\n")
    longest = max((len(m) for m in re.findall(r"`{3,}", text)), default=2)
    ticks = "`" * max(3, longest + 1)
    return f"{ticks}\n{text}\n{ticks}"


def environment(inert: bool = False) -> jinja2.Environment:
    """The report's templates; inert=True for the Markdown that becomes the HTML page."""
    with _envs_lock:
        return _environment(inert)


class _TemplateCache(jinja2.FileSystemBytecodeCache):
    """Compiled templates kept between runs: compiling the report's template takes longer
    than `persistaudit report` may (issue 13: 0.2 s). An edited template is compiled again
    (each entry is checked against its source); a cache that cannot be written is no error."""

    def dump_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
        with contextlib.suppress(OSError):
            super().dump_bytecode(bucket)


def _bytecode_cache() -> jinja2.BytecodeCache | None:
    """In the user's cache folder ($XDG_CACHE_HOME or ~/.cache), persistaudit/templates:
    created private, and used only while it is the user's own and writable by nobody else
    (what is in it is run). None where no such folder can be had: compiled each time."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    folder = os.path.join(base, "persistaudit", "templates")
    try:
        os.makedirs(folder, mode=0o700, exist_ok=True)
        info = os.stat(folder, follow_symlinks=False)
    except OSError:
        return None
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid() or info.st_mode & 0o022:
        return None
    return _TemplateCache(folder)


def _environment(inert: bool) -> jinja2.Environment:
    if inert not in _envs:
        env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(str(bundled("templates"))),
            undefined=jinja2.StrictUndefined,
            autoescape=False,  # Markdown: escaping is explicit, through the filters
            keep_trailing_newline=True,
            trim_blocks=True,
            lstrip_blocks=True,
            bytecode_cache=_bytecode_cache(),
        )
        env.filters.update(
            cell=functools.partial(md_cell, inert=inert),
            text=functools.partial(md_text, inert=inert),
            code=md_code,
            fence=fence,
            argv=lambda words: shlex.join(str(w) for w in words),
        )
        _envs[inert] = env
    return _envs[inert]


def _compact(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(", ", ": "))


def step_details(step: dict[str, Any]) -> str:
    """A canary step's headers, body and standard input, on one line."""
    parts = [f"{k}: {v}" for k, v in (step.get("headers") or {}).items()]
    if "form" in step:
        parts.append("form " + "&".join(f"{k}={v}" for k, v in step["form"].items()))
    if "json" in step:
        parts.append("json " + _compact(step["json"]))
    if "stdin" in step:
        parts.append("stdin: " + str(step["stdin"]))
    return "; ".join(parts)


def report_context(
    results: dict[str, Any],
    signoff: dict[str, Any] | None = None,
    results_dir: Path | None = None,
) -> dict[str, Any]:
    """What the templates show; results_dir is the folder of results.json, if known."""
    paths_base = relpaths.relative_to(results, results_dir)
    results = relpaths.relative(bounded(results), results_dir)  # on what is shown only
    checks = results["checks"]
    # Per suite, groups of results: a check's per-database results (`check[name]`) together.
    # (check, per database?, results); a plain id is a group of its own.
    suites: dict[str, list[tuple[str, bool, list[dict[str, Any]]]]] = {}
    for check in checks:
        groups = suites.setdefault(check["suite"], [])
        per_database = bool(database_of(check["id"]))
        base = catalog.base_id(check["id"]) if per_database else check["id"]
        if per_database and groups and groups[-1][:2] == (base, True):
            groups[-1][2].append(check)
        else:
            groups.append((base, per_database, [check]))
    suite_of = {c["id"]: c["suite"] for c in checks}  # a metric's suite, by its check
    problems = sorted(
        (c for c in checks if c["status"] in ("failed", "error", "blocked")),
        key=lambda c: ORDER[c["status"]],
    )
    waived = [c for c in checks if c["status"] == "waived"]
    reproduce = results.get("reproduce") or {}
    return {
        "r": results,
        "reproduce": reproduce,
        "steps": [(step, step_details(step)) for step in reproduce.get("canary", [])],
        "mark": STATUS_MARK,
        "suites": [
            (
                *_suite_heading(s),
                gs,
                [m for m in results["metrics"] if suite_of.get(m["check"]) == s],
            )
            for s, gs in suites.items()
        ],
        # What needs the reader: failures, blocks and internal errors, never the passes.
        "key_findings": problems,
        "risks": [(c, _naming_database(risk(c), c, results["target"])) for c in problems],
        "residual": residual_risks(checks),
        "recommendations": [
            (c, recommendation(c, results["target"]))
            for c in problems + waived
            if c["status"] != "blocked" or catalog.is_gate(c["id"])
        ],
        "blocked_by_startup": [
            c["id"] for c in problems if c["status"] == "blocked" and not catalog.is_gate(c["id"])
        ],
        # Only a blocked start gate means "the target did not start"; other checks are blocked
        # by what their own summaries say (a missing database file, a limit).
        "blocked_step": (
            "Once the target starts, re-run the audit"
            if any(c["status"] == "blocked" and catalog.is_gate(c["id"]) for c in checks)
            else "Once what blocked them is resolved (each says why), re-run the audit"
        ),
        "passing_recommendations": passing_recommendations(checks),
        "validated": [c for c in checks if c["status"] == "passed"],
        "failed": [c for c in checks if c["status"] == "failed"],
        "blocked": [c for c in checks if c["status"] == "blocked"],
        "waived": waived,
        "errors": [c for c in checks if c["status"] == "error"],
        # A check that persistaudit itself failed inside tested nothing.
        "not_tested": [c for c in checks if c["status"] in ("skipped", "error")],
        "untested_areas": untested_areas(checks),
        # Bundled checks this run left out (-k, or a team's checks alone): not a full audit.
        "not_run": selection.not_run(results),
        "files": results.get("evidence_files", {}),
        "signoff": signoff,
        "paths_base": paths_base,
    }


_PER_DATABASE = re.compile(r"^[a-z_]+\.[a-z_]+\[([A-Za-z0-9_.-]+)\]$")


def database_of(check_id: str) -> str:
    """The database a result is about: `schema[cache]` -> cache; "" for a plain id."""
    match = _PER_DATABASE.match(check_id)
    return match.group(1) if match else ""


def _naming_database(
    risk: tuple[str, str, str], check: dict[str, Any], target: dict[str, Any]
) -> tuple[str, str, str]:
    """The risk of a per-database result, naming the database (and its path) first."""
    name = database_of(check["id"])
    if not name:
        return risk
    paths = {d.get("name"): d.get("path") for d in target.get("databases", [])}
    where = f" ({paths[name]})" if paths.get(name) else ""
    return f"Database {name}{where}: {risk[0]}", risk[1], risk[2]


def _suite_heading(name: str) -> tuple[str, str, str]:
    """(title, name, what was done) of a suite; a suite the catalog does not know by name."""
    entry = catalog.suite(name)
    return (entry.title, name, entry.done) if entry else (name, name, "")


def render_markdown(
    results: dict[str, Any],
    signoff: dict[str, Any] | None = None,
    *,
    inert: bool = False,
    base: Path | None = None,
) -> str:
    """The auditor's report; signoff (who signed, when, with which key) fills its last block.

    base: the folder of results.json, which host paths are shown relative to (relpaths).
    """
    return _markdown_template(inert).render(**report_context(results, signoff, base))


def _markdown_template(inert: bool = False) -> jinja2.Template:
    # One compilation at a time: a report asked for while prepare() compiles waits for it
    # rather than compiling the same template beside it.
    with _compiling:
        return environment(inert).get_template(MARKDOWN_TEMPLATE)


def prepare() -> None:
    """Compile the Markdown report's template now. Compiling it takes far longer than
    rendering it, so an audit has it done in a thread while the target starts, and the
    report at the end does not wait for it."""
    _markdown_template()


def render_html(
    results: dict[str, Any], signoff: dict[str, Any] | None = None, *, base: Path | None = None
) -> str:
    """The same report as one standalone HTML page; raw HTML in the Markdown is not passed."""
    from markdown_it import MarkdownIt

    # No links or images: nothing in a report links anywhere, a target must not make it link
    # (phishing), and link labels are what makes Markdown parsing slow on hostile text.
    markdown = MarkdownIt("commonmark", {"html": False}).enable("table")
    markdown.disable(["link", "image", "reference"])
    body = markdown.render(render_markdown(results, signoff, inert=True, base=base))
    title = f"Persistence validation report: {results['target']['name']}"
    return (
        environment()
        .get_template("report.html.j2")
        .render(
            title=title,
            body=body,
            verdict=results["verdict"],
            counts=verdict_counts(results["checks"]),
        )
    )


def verdict_counts(checks: list[dict[str, Any]]) -> str:
    """`7 passed, 2 failed, 0 blocked (and the rest), of 9 checks`: the banner's line."""
    count = {s: sum(c["status"] == s for c in checks) for s in STATUS_MARK}
    parts = [
        f"{count['passed']} passed",
        f"{count['failed']} failed",
        f"{count['blocked']} blocked",
    ]
    parts += [f"{count[s]} {s}" for s in ("error", "waived", "skipped") if count[s]]
    return f"{', '.join(parts)}, of {len(checks)} checks"

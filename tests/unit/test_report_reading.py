"""The report reads well on paper and on screen: every difference filled in, Markdown
escaped the Markdown way, no host paths, and a verdict banner on the HTML page."""

from __future__ import annotations

import copy
import html
import re
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from markdown_it import MarkdownIt

from persistaudit import relpaths, sqltext
from persistaudit.diff import diff
from persistaudit.difftable import ABSENT, COLUMNS, MISSING, rows, word_diffed
from persistaudit.report import md_cell, md_code, md_text, render_html, render_markdown
from persistaudit.schema import from_file
from tests.unit.test_report import results

BEFORE = """
CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT NOT NULL COLLATE NOCASE,
  name TEXT DEFAULT 'x');
CREATE TABLE notes (id INTEGER PRIMARY KEY, user_id INTEGER REFERENCES users(id), body TEXT);
CREATE TABLE legacy (a TEXT);
CREATE INDEX ix_notes_user ON notes(user_id, id DESC);
CREATE VIEW v_notes AS SELECT n.id, n.body, u.email FROM notes n JOIN users u ON u.id = n.user_id;
CREATE TRIGGER t_notes AFTER INSERT ON notes BEGIN SELECT 1; END;
"""
AFTER = """
CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT NOT NULL COLLATE NOCASE);
CREATE TABLE notes (id INTEGER PRIMARY KEY, user_id INTEGER REFERENCES users(id), body TEXT,
  extra BLOB);
CREATE TABLE added (b INTEGER NOT NULL);
CREATE INDEX ix_notes_body ON notes(body) WHERE body IS NOT NULL;
CREATE VIEW v_notes AS SELECT n.id, n.body, u.email, u.id AS uid FROM notes n
  JOIN users u ON u.id = n.user_id;
"""


def schema_of(sql: str, tmp_path: Path, name: str) -> Any:
    path = tmp_path / f"{name}.db"
    with sqlite3.connect(path) as db:
        db.executescript(sql)
    db.close()
    return from_file(path)


@pytest.fixture
def table(tmp_path: Path) -> dict[tuple[str, str], list[str]]:
    expected, actual = schema_of(BEFORE, tmp_path, "a"), schema_of(AFTER, tmp_path, "b")
    found = rows(diff(expected, actual), expected, actual)
    assert all(len(row) == len(COLUMNS) for row in found)
    return {(row[0], row[1]): row[2:] for row in found}


def test_every_difference_fills_expected_and_actual(
    table: dict[tuple[str, str], list[str]],
) -> None:
    assert all(cell for cells in table.values() for cell in cells)
    assert table["missing", "legacy"] == ["table (a TEXT)", MISSING]
    assert table["unexpected", "added"] == [ABSENT, "table (b INTEGER NOT NULL)"]
    assert table["missing", "users.name"] == ["TEXT DEFAULT 'x'", MISSING]
    assert table["unexpected", "notes.extra"] == [ABSENT, "BLOB"]
    assert table["missing", "ix_notes_user"] == ["INDEX ON notes(user_id, id desc)", MISSING]
    assert table["unexpected", "ix_notes_body"] == [
        ABSENT,
        "INDEX ON notes(body) WHERE body is not null",
    ]
    expected_trigger, found_trigger = table["missing", "t_notes"]
    assert expected_trigger == "after insert on notes begin select 1; end"
    assert found_trigger == MISSING


def test_long_sql_changes_are_a_word_diff_in_two_halves(
    table: dict[tuple[str, str], list[str]],
) -> None:
    before, after = table["changed", "v_notes"]
    assert "{+" not in before
    assert "[-" not in after
    assert after.startswith("... ")  # unchanged stretches cut around the change
    assert "u.email {+, u.id as uid+} from notes n join" in after
    assert "u.email from notes n join" in before
    assert word_diffed([["changed", "v_notes", before, after]])


def test_without_manifests_a_definition_is_present() -> None:
    from persistaudit.diff import Difference

    (row,) = rows([Difference("missing", "check", "t: CHECK(a > 0)", table="t")])
    assert row == ["missing", "t: CHECK(a > 0)", "present", MISSING]


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.sampled_from(["a", "b", "c", ",", "(", ")", "'x'", "1", "+"]), max_size=30),
    st.lists(st.sampled_from(["a", "b", "c", ",", "(", ")", "'x'", "1", "+"]), max_size=30),
)
def test_word_diff_sides_mark_only_their_own_side(old: list[str], new: list[str]) -> None:
    a, b = " ".join(["select", *old]), " ".join(["select", *new])
    left, right = sqltext.word_diff_sides(a, b)
    combined = sqltext.word_diff(a, b)
    assert "{+" not in left
    assert "[-" not in right
    assert ("[-" in combined) == ("[-" in left)
    assert ("{+" in combined) == ("{+" in right)
    if sqltext.normalize(a) == sqltext.normalize(b):
        assert left == right


# -- Markdown escaping --------------------------------------------------------------------------

MD = MarkdownIt("commonmark", {"html": True}).enable("table")
# Printable text on one line: what the report shows as it is (the rest it shows escaped).
TEXT = st.text(
    alphabet=st.characters(blacklist_categories=["Cs", "Cc", "Zl", "Zp"]).filter(str.isprintable),
    min_size=1,
    max_size=40,
)


def shown(rendered_html: str) -> str:
    return html.unescape(re.sub(r"<[^>]+>", "", rendered_html)).strip()


ALLOWED_TAGS = r"<(?!/?(table|thead|tbody|tr|th|td|p|em|strong|code)>)"  # none of its own


@settings(max_examples=200, deadline=None)
@given(TEXT, st.booleans())
def test_a_cell_shows_its_text_as_written_and_never_html(value: str, inert: bool) -> None:
    """Raw report.md may show emphasis; the HTML page's Markdown (inert) shows the text as is."""
    cell = md_cell(value, inert=inert)
    assert "&lt;" not in cell
    assert "&gt;" not in cell
    page = MD.render(f"| h |\n|---|\n| {cell} |\n")
    assert page.count("<td>") == 1  # the text stays in its one cell
    assert re.search(ALLOWED_TAGS, page) is None
    if inert:
        assert shown(page.split("<tbody>")[1]) == value.strip()


@settings(max_examples=200, deadline=None)
@given(TEXT, st.booleans())
def test_a_paragraph_shows_its_text_as_written_and_starts_no_block(value: str, inert: bool) -> None:
    assume(value.strip())
    assume("`" not in value)  # paragraphs keep code spans: the catalog's advice quotes commands
    page = MD.render(md_text(value, inert=inert) + "\n")
    assert page.startswith("<p>")
    assert page.count("<p>") == 1
    assert re.search(ALLOWED_TAGS, page) is None
    if inert:
        assert shown(page) == value.strip()


@settings(max_examples=200, deadline=None)
@given(TEXT)
def test_a_code_span_shows_its_text_as_written(value: str) -> None:
    assume(value.strip())  # a blank value is no code span at all
    span = md_code(value)
    page = MD.render(f"| h |\n|---|\n| {span} |\n")
    (code,) = re.findall(r"<code>(.*?)</code>", page, re.DOTALL)
    assert html.unescape(code) == value.strip()


def test_the_raw_markdown_has_no_html_entities() -> None:
    doc = results()
    doc["checks"][0]["summary"] = "a -> b, x < y && z > 0, &amp; stays &amp;"
    doc["target"]["image"] = "demo:<1>"
    text = render_markdown(doc)
    assert "a -> b, x \\< y && z > 0, \\&amp; stays \\&amp;" in text
    assert "`demo:<1>`" in text
    assert re.search(r"(?<!\\)&(#\d+|[a-z]+);", text) is None


# -- host paths ---------------------------------------------------------------------------------


def doc_at(config: str) -> dict[str, Any]:
    doc = results()
    doc["target"]["config"] = config
    folder = config.rsplit("/", 1)[0]
    doc["reproduce"] = {
        "container": {},
        "run_command": "",
        "commands": {
            "start": f"docker compose -f {folder}/compose.yaml up; ls /tmp/persistaudit-d-1"
        },
        "readiness": "GET /health",
        "canary": [],
    }
    return doc


def test_host_paths_become_relative_to_the_folder_of_results_json() -> None:
    doc = doc_at("/work/ci/checkout/fixtures/app/audit.yaml")
    out = relpaths.relative(doc, Path("/work/ci/checkout/reports/out/app"))
    assert out["target"]["config"] == "../../../fixtures/app/audit.yaml"
    assert out["reproduce"]["commands"]["start"] == (
        "docker compose -f ../../../fixtures/app/compose.yaml up; ls $TMPDIR/persistaudit-d-1"
    )
    assert relpaths.relative(out, None) == out  # already relative: unchanged
    assert doc["target"]["config"].startswith("/work/")  # the input is not changed


def test_an_old_document_is_shown_relative_to_the_configs_folder() -> None:
    text = render_markdown(doc_at("/home/ada/audits/app/audit.yaml"))
    assert "/home/ada" not in text
    assert "| Configuration | `audit.yaml` (sha256" in text
    assert "host paths in this report are relative to the configuration's folder" in text
    assert "docker compose -f ./compose.yaml up" in text


def test_a_report_folder_in_an_unrelated_tree_shows_paths_from_the_configs_folder() -> None:
    """/tmp/report beside /work/ci/...: ../../work/ci/... would name this machine's folders."""
    doc = doc_at("/work/ci/checkout/fixtures/app/audit.yaml")
    out = relpaths.relative(doc, Path("/tmp/report"))
    assert out["target"]["config"] == "audit.yaml"
    assert out["reproduce"]["commands"]["start"].startswith("docker compose -f ./compose.yaml up")
    assert relpaths.relative_to(doc, Path("/tmp/report")) == "the configuration's folder"
    written = relpaths.relative(out, Path("/tmp/report"))  # results.json, read again
    assert written == out
    assert relpaths.relative_to(written, Path("/tmp/report")) == "the configuration's folder"
    assert "host paths in this report are relative to the configuration's folder" in (
        render_markdown(written)
    )
    near = relpaths.relative(doc, Path("/work/reports/app"))  # /work is shared: relative
    assert near["target"]["config"] == "../../ci/checkout/fixtures/app/audit.yaml"
    assert relpaths.relative_to(doc, Path("/work/reports/app")) == "the folder of results.json"


def test_a_path_that_only_starts_like_the_configs_folder_is_left_alone() -> None:
    doc = doc_at("/srv/app/audit.yaml")
    doc["checks"][0]["summary"] = "see /srv/apple/x and /data/srv/app/y and /srv/app/z"
    out = relpaths.relative(doc, Path("/srv/app/out"))
    assert out["checks"][0]["summary"] == "see /srv/apple/x and /data/srv/app/y and ../z"


def test_a_report_rendered_from_the_fixture_route_names_no_folder() -> None:
    doc = results()
    doc["target"]["config"] = relpaths.FIXTURE_ORIGIN
    assert "host paths in this report" not in render_markdown(doc)


# -- the HTML page ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("verdict", "status"),
    [("PASS", "passed"), ("FAIL", "failed"), ("BLOCKED", "blocked"), ("ERROR", "error")],
)
def test_the_html_page_opens_with_a_verdict_banner_in_its_colour(verdict: str, status: str) -> None:
    doc = copy.deepcopy(results(verdict=verdict))
    doc["checks"][1]["status"] = status
    page = render_html(doc)
    banner = re.search(r'<div class="verdict verdict-(\w+)" role="status">(.*?)</div>', page)
    assert banner is not None
    assert banner.group(1) == verdict.lower()
    assert banner.group(2).startswith(f"<strong>{verdict}</strong>")
    assert banner.group(2).endswith("of 2 checks")
    css = page.split("<style>")[1].split("</style>")[0]
    assert f".verdict-{verdict.lower()} {{" in css
    assert "@media print" in css
    assert page.index('class="verdict') < page.index("<h1>")


def test_key_findings_list_errors_too_but_never_passes_or_skips() -> None:
    doc = results(verdict="ERROR")
    doc["checks"][0]["status"] = "error"
    doc["checks"][1]["status"] = "skipped"
    findings = render_markdown(doc).split("Key findings:")[1].split("## ")[0]
    assert "**ERROR** `fresh_install.startup`" in findings
    assert "restart.retention" not in findings

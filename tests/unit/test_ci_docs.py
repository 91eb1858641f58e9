"""The CI examples under docs/ci: valid YAML, calling only commands and options that exist,
keeping the outputs a pipeline needs."""

from __future__ import annotations

import shlex
from collections.abc import Iterator
from typing import Any

import click
import pytest
import yaml

from persistaudit.cli import main
from tests.helpers import REPO

EXAMPLES = ["github-actions.yml", "gitlab-ci.yml"]
KEPT = ("report.md", "results.json", "junit.xml")


def load(name: str) -> Any:
    return yaml.safe_load((REPO / "docs" / "ci" / name).read_text())


def strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from strings(item)


def invocations(doc: Any) -> list[list[str]]:
    """Every `persistaudit ...` command line in the file's scripts, as argument lists."""
    found = []
    for text in strings(doc):
        for line in text.replace("\\\n", " ").splitlines():
            words = shlex.split(line, comments=True)
            if "persistaudit" in words and words.index("persistaudit") + 1 < len(words):
                found.append(words[words.index("persistaudit") + 1 :])
    return found


def check_invocation(args: list[str]) -> None:
    group = main
    assert isinstance(group, click.Group)
    command = group.commands.get(args[0])
    assert command is not None, f"persistaudit {args[0]}: no such command"
    options = {opt: p for p in command.params for opt in (*p.opts, *p.secondary_opts)}
    words = iter(args[1:])
    for word in words:
        if not word.startswith("-"):
            continue
        name = word.split("=", 1)[0]
        assert name in options, f"persistaudit {args[0]} has no option {name}"
        param = options[name]
        if isinstance(param, click.Option) and not param.is_flag and "=" not in word:
            assert next(words, None) is not None, f"{name} needs a value"


@pytest.mark.parametrize("name", EXAMPLES)
def test_examples_call_existing_commands_and_options(name: str) -> None:
    calls = invocations(load(name))
    assert calls, f"{name} does not run persistaudit"
    assert any(c[0] == "run" for c in calls)
    for call in calls:
        check_invocation(call)


def test_the_check_itself_catches_a_misspelt_option() -> None:
    with pytest.raises(AssertionError, match="no option --junt"):
        check_invocation(["run", "audit.yaml", "--junt", "x.xml"])
    with pytest.raises(AssertionError, match="no such command"):
        check_invocation(["audit", "audit.yaml"])


def test_github_workflow_keeps_the_outputs_whatever_the_verdict() -> None:
    doc = load("github-actions.yml")
    steps = doc["jobs"]["audit"]["steps"]
    upload = next(s for s in steps if str(s.get("uses", "")).startswith("actions/upload-artifact"))
    assert upload["if"] == "always()"
    paths = upload["with"]["path"].split()
    assert all(any(p.endswith(k) for p in paths) for k in KEPT)
    assert any("pip install persistaudit" in s.get("run", "") for s in steps)


def test_gitlab_job_keeps_the_outputs_and_reports_junit() -> None:
    job = load("gitlab-ci.yml")["persistence-audit"]
    artifacts = job["artifacts"]
    assert artifacts["when"] == "always"
    assert all(any(p.endswith(k) for p in artifacts["paths"]) for k in KEPT)
    assert artifacts["reports"]["junit"] == "junit.xml"
    assert any("pip install persistaudit" in line for line in job["script"])

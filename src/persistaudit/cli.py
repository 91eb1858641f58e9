"""The persistaudit command line. Bad input is one line on stderr and exit code 2."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Any, TypeVar

import click
import pytest

from persistaudit import __version__, engine
from persistaudit.config import load_config
from persistaudit.exceptions import PersistauditError
from persistaudit.findings import EXIT_CODES
from persistaudit.images import ensure_image
from persistaudit.report import render_markdown
from persistaudit.resources import bundled

EXIT_USAGE = 2
EXIT_INTERNAL = 4
F = TypeVar("F", bound=Callable[..., Any])


def fail(message: str, code: int = EXIT_USAGE) -> None:
    click.echo(f"persistaudit: error: {message}", err=True)
    sys.exit(code)


def one_line_errors(func: F) -> F:
    """A PersistauditError becomes one line on stderr and exit 2, never a traceback."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except PersistauditError as exc:
            fail(str(exc))

    return wrapper  # type: ignore[return-value]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="persistaudit")
def main() -> None:
    """Audit that a containerized service keeps its SQLite data."""


@main.command()
@click.argument("config", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder for results.json and report.md [default: reports/out/NAME].",
)
@click.option(
    "-k", "select", metavar="EXPR", help="Only checks matching this pytest -k expression."
)
@one_line_errors
def run(config: Path, out: Path | None, select: str | None) -> None:
    """Audit the target described by CONFIG: fresh install, restart, re-create.

    Exit code: 0 PASS, 1 FAIL, 3 BLOCKED, 2 bad usage or config.
    """
    target = load_config(config)
    out = out or Path("reports") / "out" / target.name
    client = engine.connect()
    click.echo(f"persistaudit {__version__}: auditing {target.name} ({config})", err=True)
    ensure_image(client, target)  # build or pull errors are usage errors, before any suite runs
    results = out / "results.json"
    results.unlink(missing_ok=True)
    args = [
        str(bundled("suites")),
        f"--persistaudit-config={config}",
        f"--persistaudit-out={out}",
        "-p",
        "no:terminal",
        "-p",
        "no:cacheprovider",
        f"--rootdir={bundled('suites')}",
        "-c",
        "/dev/null",
    ]
    if select:
        args += ["-k", select]
    code = pytest.main(args)
    if not results.is_file():
        fail(f"the audit produced no results (pytest exit code {int(code)})", EXIT_INTERNAL)
    verdict = json.loads(results.read_text(encoding="utf-8"))["verdict"]
    click.echo(f"{verdict}: {out / 'report.md'}", err=True)
    sys.exit(EXIT_CODES[verdict])


@main.command()
@click.argument("results", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True)
@one_line_errors
def report(results: Path, output: Path) -> None:
    """Render REPORT.md again from a saved results.json."""
    try:
        doc = json.loads(results.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        fail(f"{results}: not a results.json: {exc}")
    if not isinstance(doc, dict) or "checks" not in doc:
        fail(f"{results}: not a persistaudit results.json (no checks)")
    output.write_text(render_markdown(doc), encoding="utf-8")


@main.command()
@one_line_errors
def clean() -> None:
    """Remove every container, volume and network a persistaudit run left behind."""
    removed = engine.remove_created(engine.connect())
    for item in removed:
        click.echo(f"removed {item}")
    if not removed:
        click.echo("nothing to remove")

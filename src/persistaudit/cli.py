"""The persistaudit command line. Bad input is one line on stderr and exit code 2."""

from __future__ import annotations

import json
import sys
import tempfile
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Any, TypeVar

import click
import pytest

from persistaudit import __version__, engine, schema
from persistaudit.audit import TargetAudit
from persistaudit.config import load_config
from persistaudit.diff import diff, group_by_table
from persistaudit.exceptions import PersistauditError, SnapshotError, TargetBlocked
from persistaudit.findings import EXIT_CODES
from persistaudit.images import ensure_image
from persistaudit.manifest import Manifest, dump_manifest, load_manifest
from persistaudit.progress import Progress
from persistaudit.redact import Redactor
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
@click.argument("source", required=False, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--from-sql", type=click.Path(dir_okay=False, path_type=Path), help="DDL file.")
@click.option("--from-sqlalchemy", metavar="MODULE:ATTR", help="MetaData or declarative Base.")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Manifest to write [default: stdout]. An existing one keeps its annotations.",
)
@click.option("--name", help="Name recorded in the manifest.")
@one_line_errors
def snapshot(
    source: Path | None,
    from_sql: Path | None,
    from_sqlalchemy: str | None,
    output: Path | None,
    name: str | None,
) -> None:
    """Write an expected-schema manifest from SOURCE (a database file or a target config).

    Or from --from-sql DDL, or from --from-sqlalchemy models. The output is sorted and stable.
    """
    given = [x for x in (source, from_sql, from_sqlalchemy) if x is not None]
    if len(given) != 1:
        fail("give exactly one of SOURCE, --from-sql or --from-sqlalchemy")
    if from_sql is not None:
        manifest = schema.from_sql(from_sql, name)
    elif from_sqlalchemy is not None:
        manifest = schema.from_sqlalchemy(from_sqlalchemy, name)
    else:
        assert source is not None
        if source.suffix in (".yaml", ".yml"):
            manifest = _snapshot_target(source, name)
        else:
            manifest = schema.from_file(source, name)
    if output is not None and output.is_file():
        manifest = schema.keep_annotations(manifest, load_manifest(output))
    text = dump_manifest(manifest)
    if output is None:
        click.echo(text, nl=False)
    else:
        output.write_text(text, encoding="utf-8")
        click.echo(
            f"wrote {output}: {len(manifest.tables)} tables, "
            f"{len(manifest.indexes)} indexes, {len(manifest.views)} views, "
            f"{len(manifest.triggers)} triggers",
            err=True,
        )


def _snapshot_target(path: Path, name: str | None) -> Manifest:
    """Start the target on a fresh volume, wait until ready, snapshot, clean up."""
    config = load_config(path, require_manifest=False)
    client = engine.connect()
    progress = Progress(Redactor(config.env, config.redact))
    with tempfile.TemporaryDirectory(prefix="persistaudit-snapshot-") as tmp:
        audit = TargetAudit(config, client, engine.new_run_id(), Path(tmp), progress.line)
        try:
            fresh = audit.fresh
            if fresh.blocked is not None:
                raise TargetBlocked(
                    f"{path}: {fresh.blocked}", reason=fresh.blocked.reason, evidence={}
                )
            if fresh.database.schema is None:
                raise SnapshotError(fresh.database.error)
            return fresh.database.schema.model_copy(update={"name": name or config.name})
        finally:
            audit.close()


@main.command("diff")
@click.argument("manifest", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("other", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the differences as JSON.")
@one_line_errors
def diff_command(manifest: Path, other: Path, as_json: bool) -> None:
    """Compare MANIFEST with OTHER (a database file or another manifest).

    Exit code: 0 equal, 1 drift, 2 bad input.
    """
    expected = load_manifest(manifest)
    if not other.is_file():
        fail(f"{other}: file not found")
    with other.open("rb") as fh:
        head = fh.read(16)
    if other.suffix in (".yaml", ".yml") and not head.startswith(b"SQLite format 3"):
        actual = load_manifest(other)
    else:
        actual = schema.from_file(other)
    found = diff(expected, actual)
    if as_json:
        doc = {"drift": bool(found), "differences": [d.as_json() for d in found]}
        click.echo(json.dumps(doc, indent=2, default=str))
    elif not found:
        click.echo(f"no drift: {other} matches {manifest}")
    else:
        click.echo(f"{len(found)} difference(s) between {manifest} and {other}:")
        for table, items in group_by_table(found).items():
            click.echo(f"  {table}")
            for item in items:
                click.echo(f"    {item.describe()}")
    sys.exit(1 if found else 0)


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

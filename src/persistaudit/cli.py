"""The persistaudit command line. Bad input is one line on stderr and exit code 2."""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import sys
import traceback
from collections.abc import Callable, Iterator
from dataclasses import asdict
from functools import wraps
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO, TypeVar

import click

# Only light modules here: `diff`, `snapshot FILE`, `report`, `verify` and `--help` must not
# pay for pytest, docker or testcontainers (most of a second). Each command imports the
# rest itself; tests/unit/test_light_imports.py holds this.
from persistaudit import __version__, activity, signals
from persistaudit.display import printable
from persistaudit.exceptions import (
    NoVerdict,
    PersistauditError,
    SnapshotError,
    TargetBlocked,
    summarize,
)
from persistaudit.findings import EXIT_CODES
from persistaudit.resources import bundled
from persistaudit.sqlite_files import MAGIC, is_sqlite

if TYPE_CHECKING:
    from persistaudit.manifest import Manifest
    from persistaudit.redact import Redactor

EXIT_USAGE = 2
EXIT_INTERNAL = 4
F = TypeVar("F", bound=Callable[..., Any])


def one_line(text: str) -> str:
    """Text for one terminal line: line breaks folded, other control characters escaped.

    Messages may quote a file, a SQLite error with its CREATE statement, or a signer's name;
    none of them may add a line (or forge one) on the terminal.
    """
    return printable(re.sub(r"\s*[\r\n]+\s*", " ", text), backslash=False)


def fail(message: str, code: int = EXIT_USAGE) -> None:
    click.echo(f"persistaudit: error: {one_line(message)}", err=True)
    sys.exit(code)


def write_output(path: Path, text: str) -> None:
    """Write a file the user named; a path that cannot be written is one line, exit 2."""
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise PersistauditError(f"{path}: cannot write: {exc.strerror}") from None


def one_line_errors(func: F) -> F:
    """A PersistauditError becomes one line on stderr and exit 2, never a traceback."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except PersistauditError as exc:
            fail(str(exc), getattr(exc, "exit_code", EXIT_USAGE))

    return wrapper  # type: ignore[return-value]


class InterruptibleGroup(click.Group):
    """Every command: SIGINT, SIGTERM or SIGHUP is one line and exit code 128 + N, and a bug
    of persistaudit's is exit code 4 (ERROR).

    Not click's "Aborted!" and exit 1, nor a bare traceback and exit 1: both read as a FAIL
    (or as drift for `diff`). The handlers are installed by the entry point (__main__);
    clean-up has run before this.
    """

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise  # click's own: usage errors (exit 2) and explicit exits
        except Exception as exc:
            # Not a PersistauditError (those are one line and exit 2, per command): a bug.
            traceback.print_exc()
            click.echo(
                f"persistaudit: internal error: {one_line(summarize(exc))[:300]} (a bug in "
                "persistaudit, not a finding; please report it with the traceback above)",
                err=True,
            )
            sys.exit(EXIT_INTERNAL)
        except KeyboardInterrupt:
            signals.note_interrupt()
            signals.settle()
            left = _left_behind()
            after = (
                f"could not remove {', '.join(left)} (see the warning above)"
                if left
                else "nothing it created is left"
            )
            message = f"interrupted by {signals.name()}: no results written; {after}"
            click.echo(f"persistaudit: {message}", err=True)
            if ctx.meta.get(JSON_STDOUT):  # stdout holds one document, whatever the outcome
                doc = _run_document(signals.exit_code(), error=message)
                click.echo(json.dumps(doc, indent=2))
            sys.exit(signals.exit_code())


def _left_behind() -> list[str]:
    """What this process's clean-ups could not remove, without importing anything.

    Everything that creates a resource imports cleanup first, so a process that has not
    (fully) imported it has nothing left behind. Importing it here would import docker,
    and an interrupt that landed in the middle of the first `import docker` leaves that
    module half-initialised: cleanup's import would then fail with a traceback.
    """
    module = sys.modules.get("persistaudit.cleanup")
    left_behind: Callable[[], list[str]] | None = getattr(module, "left_behind", None)
    return left_behind() if left_behind else []


@click.group(cls=InterruptibleGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="persistaudit")
def main() -> None:
    """Audit that a containerized service keeps its SQLite data."""


RUN_SCHEMA = "persistaudit/run/v1"
JSON_STDOUT = "persistaudit.json_stdout"  # ctx.meta: stdout holds one JSON document


@main.command()
@click.argument("config", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder for results.json and report.md [default: reports/out/NAME under the current "
    "directory].",
)
@click.option(
    "-k", "select", metavar="EXPR", help="Only checks matching this pytest -k expression."
)
@click.option(
    "--checks",
    "team_checks",
    multiple=True,
    type=click.Path(exists=True, path_type=Path),
    help="A folder or file of your own pytest checks, run with the bundled ones (repeatable).",
)
@click.option(
    "--junit",
    "junit_copy",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write junit.xml here (where the pipeline reads test reports).",
)
@click.option(
    "--json",
    "json_copy",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write results.json here.",
)
@click.option(
    "--html",
    "html_copy",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write the report as one HTML page here.",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="stdout: text, or one JSON document (verdict, checks, files); the rest goes to stderr.",
)
@click.option("-q", "--quiet", is_flag=True, help="Only the verdict line, warnings and errors.")
@click.option(
    "--keep",
    is_flag=True,
    help="Keep the target's containers and volumes after the audit, for debugging.",
)
def run(
    config: Path,
    out: Path | None,
    select: str | None,
    team_checks: tuple[Path, ...],
    junit_copy: Path | None,
    json_copy: Path | None,
    html_copy: Path | None,
    fmt: str,
    quiet: bool,
    keep: bool,
) -> None:
    """Audit the target described by CONFIG: fresh install, restart, re-create.

    Exit code: 0 PASS, 1 FAIL, 2 bad usage or config, 3 BLOCKED, 4 ERROR (a bug inside
    persistaudit), 128+N interrupted by signal N (130 SIGINT, 143 SIGTERM, 129 SIGHUP).
    """
    as_json = fmt == "json"
    click.get_current_context().meta[JSON_STDOUT] = as_json
    copies = {"junit": junit_copy, "json": json_copy, "html": html_copy}
    try:
        with _stdout_to_stderr(as_json):
            done = _audit(
                config,
                out,
                select,
                copies,
                team_checks=team_checks,
                quiet=quiet,
                keep=keep,
                as_json=as_json,
            )
    except PersistauditError as exc:
        code = getattr(exc, "exit_code", EXIT_USAGE)
        if as_json:
            click.echo(json.dumps(_run_document(code, error=one_line(str(exc))), indent=2))
        fail(str(exc), code)
    code = EXIT_CODES[done["verdict"]]
    if as_json:
        click.echo(json.dumps(_run_document(code, **done), indent=2))
    sys.exit(code)


def _audit(
    config: Path,
    out: Path | None,
    select: str | None,
    copies: dict[str, Path | None],
    *,
    team_checks: tuple[Path, ...] = (),
    quiet: bool,
    keep: bool,
    as_json: bool,
) -> dict[str, Any]:
    """Run the audit, publish its folder, write the copies and the CI outputs.

    Returns what the JSON document on stdout says about the run.
    """
    import pytest

    from persistaudit import ci, engine, outputs, runtime
    from persistaudit import keep as kept_runs
    from persistaudit.config import load_config
    from persistaudit.progress import Mode, Progress, live_possible
    from persistaudit.progress import install as install_progress
    from persistaudit.redact import Redactor

    target = load_config(config)
    out = out or Path("reports") / "out" / target.name
    kept_before = len(kept_runs.kept_here())  # runs kept earlier in this process are not ours
    for path in filter(None, copies.values()):
        _check_writable(path)
    redactor = Redactor.for_target(target)
    stream, owned = _terminal_stderr()
    mode: Mode = "quiet" if quiet else "live" if live_possible(stream) else "plain"
    progress = Progress(redactor, stream, mode=mode)
    # Held until the end: a second run into the same folder refuses at once, and the suites
    # only stage the outputs; they are moved in below, once nothing can interrupt the run.
    try:
        with outputs.hold(out, defer=True) as folder:
            client = engine.connect()
            if not quiet:
                click.echo(
                    f"persistaudit {__version__}: auditing {target.name} ({config})", err=True
                )
            install_progress(progress)
            progress.start()
            # Build, pull and compose-file errors are usage errors, found before any suite.
            with activity.during("stage", "prepare"):
                runtime.prepare(target, client)
            code = _run_suites(config, out, select, team_checks, keep)
            progress.stop()
            signals.check()
            if code == pytest.ExitCode.INTERRUPTED:
                raise KeyboardInterrupt
            if not folder.staged:
                if code == pytest.ExitCode.NO_TESTS_COLLECTED and select:
                    raise NoVerdict(
                        f"-k {select!r} selects no check (check ids are suite.check, for "
                        "example fresh_install.schema or restart.retention)"
                    )
                if code == pytest.ExitCode.USAGE_ERROR:  # pytest said why, e.g. a malformed -k
                    raise NoVerdict("the audit could not start: see the error above")
                raise NoVerdict(
                    f"the audit produced no results (pytest exit code {int(code)})",
                    exit_code=EXIT_INTERNAL,
                )
            signals.settle()  # the point of no return: the audit is complete
            folder.publish()
    finally:
        progress.stop()
        install_progress(None)
        if owned:
            stream.close()
    doc = json.loads((out / outputs.RESULTS).read_text(encoding="utf-8"))
    verdict = doc["verdict"]
    written = _write_copies(out, doc, copies)
    errors = [c["id"] for c in doc["checks"] if c["status"] == "error"]
    if errors:
        click.echo(
            f"persistaudit: internal error in {', '.join(errors)}: a bug in persistaudit, "
            f"please report it with {out / 'evidence'}/internal-error-*.txt",
            err=True,
        )
    if ci.on_github():
        _github(doc, redactor, out, as_json)
    from persistaudit.selection import verdict_text

    click.echo(f"{verdict_text(doc)}: {out / 'report.md'}", err=True)
    kept = kept_runs.kept_here()[kept_before:]
    for run_kept in kept:
        what = ", ".join([*run_kept.containers, *run_kept.volumes, *run_kept.networks])
        click.echo(f"kept for debugging (--keep): {what or 'nothing was left'}", err=True)
        for command in run_kept.remove_commands():
            click.echo(f"  remove with: {command}", err=True)
    # results.json is redacted already; once more guards the path to stdout.
    summary: dict[str, Any] = redactor.deep(
        {
            "verdict": verdict,
            "target": target.name,
            "folder": str(out),
            "files": {name: str(out / name) for name in ("results.json", "report.md", "junit.xml")}
            | written,
            "checks": [
                {"id": c["id"], "status": c["status"], "summary": c["summary"]}
                for c in doc["checks"]
            ],
            "kept": [k.as_json() for k in kept],
        }
    )
    return summary


def _run_document(exit_code: int, **fields: Any) -> dict[str, Any]:
    """The one JSON document `run --format json` prints: the same keys on every outcome."""
    doc: dict[str, Any] = {
        "schema": RUN_SCHEMA,
        "verdict": None,
        "exit_code": exit_code,
        "error": None,
        "target": None,
        "folder": None,
        "files": {},
        "checks": [],
        "kept": [],
    }
    return doc | fields


@contextlib.contextmanager
def _stdout_to_stderr(active: bool) -> Iterator[None]:
    """While active, whatever is written to stdout (a library's print, a subprocess) goes to
    stderr: with --format json stdout holds the one document, written afterwards."""
    if not active:
        yield
        return
    sys.stdout.flush()
    try:
        fd = sys.stdout.fileno()
        err = sys.stderr.fileno()
    except (AttributeError, ValueError, io.UnsupportedOperation):  # not a real file (tests)
        with contextlib.redirect_stdout(sys.stderr):
            yield
        return
    saved = os.dup(fd)
    try:
        os.dup2(err, fd)
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, fd)
        os.close(saved)


def _terminal_stderr() -> tuple[TextIO, bool]:
    """The terminal for progress: a copy of stderr's descriptor, which pytest's capture of
    fd 2 during the checks does not reach; sys.stderr itself where it has no descriptor."""
    try:
        fd = os.dup(sys.stderr.fileno())
    except (AttributeError, ValueError, OSError, io.UnsupportedOperation):
        return sys.stderr, False
    return os.fdopen(fd, "w", encoding="utf-8", errors="replace", buffering=1), True


def _check_writable(path: Path) -> None:
    """Before the audit: a copy the pipeline asked for must be writable (else exit 2)."""
    if path.is_dir():
        raise PersistauditError(f"{path}: is a folder; give a file name")
    parent = path.parent
    if not parent.is_dir():
        raise PersistauditError(f"{path}: folder {parent} does not exist")
    if not os.access(parent, os.W_OK):
        raise PersistauditError(f"{path}: cannot write in {parent}")


def _write_copies(out: Path, doc: dict[str, Any], copies: dict[str, Path | None]) -> dict[str, str]:
    """--junit, --json and --html: the published files (or the HTML page), each replaced
    whole; returns their paths by option."""
    from persistaudit import outputs
    from persistaudit.report import render_html

    written = {}
    for option, path in copies.items():
        if path is None:
            continue
        if option == "html":
            text = render_html(doc)
        else:
            name = "junit.xml" if option == "junit" else outputs.RESULTS
            text = (out / name).read_text(encoding="utf-8")
        partial = path.with_name(f".{path.name}.partial")
        write_output(partial, text)
        os.replace(partial, path)
        written[option] = str(path)
    return written


def _github(doc: dict[str, Any], redactor: Redactor, out: Path, as_json: bool) -> None:
    """On GitHub Actions: an ::error per failed or blocked check, and the step summary.

    Annotations go to stdout, the documented channel; with --format json, to stderr (which
    the runner reads too), since stdout holds the document.
    """
    from persistaudit import ci

    for line in ci.github_annotations(doc, redactor):
        click.echo(line, err=as_json)
    summary_file = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary_file:
        try:
            with open(summary_file, "a", encoding="utf-8") as fh:
                fh.write(ci.step_summary(doc, redactor, str(out / "report.md")))
        except OSError as exc:
            click.echo(
                f"persistaudit: warning: cannot append to GITHUB_STEP_SUMMARY "
                f"({summary_file}): {exc.strerror}",
                err=True,
            )


def _run_suites(
    config: Path,
    out: Path,
    select: str | None,
    team_checks: tuple[Path, ...] = (),
    keep: bool = False,
) -> int:
    """pytest on the bundled suites and the team's own checks, with no ini file of the
    caller's (its addopts could change what runs); the team's conftest.py files load as
    pytest loads them (those in the folders given and above them)."""
    import pytest

    args = [
        str(bundled("suites")),
        *(str(path.resolve()) for path in team_checks),
        f"--persistaudit-config={config}",
        f"--persistaudit-out={out}",
        "-p",
        "no:terminal",
        "-p",
        "no:cacheprovider",
        # A signal that lands in a garbage collector's finalizer (an engine connection pool
        # closing) is swallowed there; signals.py remembers it, and pytest's own report of it
        # would only be a traceback on the user's terminal.
        "-p",
        "no:unraisableexception",
        f"--rootdir={bundled('suites')}",
        "-c",
        "/dev/null",
    ]
    if select:
        args += ["-k", select]
    if keep:
        args.append("--persistaudit-keep")
    return pytest.main(args)


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
@click.option(
    "--database",
    metavar="NAME",
    help="With a config listing several databases: the one whose manifest to write.",
)
@one_line_errors
def snapshot(
    source: Path | None,
    from_sql: Path | None,
    from_sqlalchemy: str | None,
    output: Path | None,
    name: str | None,
    database: str | None,
) -> None:
    """Write an expected-schema manifest from SOURCE (a database file or a target config).

    Or from --from-sql DDL, or from --from-sqlalchemy models. The output is sorted and stable.
    """
    from persistaudit import schema
    from persistaudit.manifest import dump_manifest, load_manifest

    given = [x for x in (source, from_sql, from_sqlalchemy) if x is not None]
    if len(given) != 1:
        fail("give exactly one of SOURCE, --from-sql or --from-sqlalchemy")
    is_config = source is not None and source.suffix in (".yaml", ".yml")
    if database is not None and not is_config:
        fail("--database goes with a target config (SOURCE ending in .yaml)")
    if from_sql is not None:
        manifest = schema.from_sql(from_sql, name)
    elif from_sqlalchemy is not None:
        manifest = schema.from_sqlalchemy(from_sqlalchemy, name)
    else:
        assert source is not None
        if is_config:
            manifest = _snapshot_target(source, name, database)
        else:
            manifest = schema.from_file(source, name)
    if output is not None and output.is_file():
        manifest = schema.keep_annotations(manifest, load_manifest(output))
    text = dump_manifest(manifest)
    signals.check()  # an interrupt during the snapshot's clean-up still means no output
    signals.settle()
    if output is None:
        click.echo(text, nl=False)
    else:
        write_output(output, text)
        click.echo(
            f"wrote {output}: {len(manifest.tables)} tables, "
            f"{len(manifest.indexes)} indexes, {len(manifest.views)} views, "
            f"{len(manifest.triggers)} triggers",
            err=True,
        )


def _snapshot_target(path: Path, name: str | None, database: str | None) -> Manifest:
    """Start the target on a fresh volume, wait until ready, snapshot, clean up."""
    from persistaudit import engine
    from persistaudit.audit import TargetAudit
    from persistaudit.config import load_config
    from persistaudit.manifest import replace
    from persistaudit.progress import Progress
    from persistaudit.redact import Redactor

    config = load_config(path, require_manifest=False)
    names = [d.name for d in config.declared_databases]
    if database is None and len(names) > 1:
        fail(
            f"{path} lists {len(names)} databases: choose one with --database ({', '.join(names)})"
        )
    if database is not None and database not in names:
        fail(f"{path} has no database {database!r}; its databases: {', '.join(names)}")
    chosen = database or names[0]
    client = engine.connect()
    redactor = Redactor.for_target(config)
    progress = Progress(redactor)
    for warning in redactor.warnings:
        progress.line(f"warning: {warning}")
    audit = None
    try:
        with signals.shielded(resume=True):  # kept for the finally before an interrupt lands
            audit = TargetAudit.create(config, client, progress.line)
        fresh = audit.fresh
        if fresh.blocked is not None:
            raise TargetBlocked(
                f"{path}: {fresh.blocked}", reason=fresh.blocked.reason, evidence={}
            )
        state = fresh.databases[chosen]
        if state.schema is None:
            raise SnapshotError(state.error)
        default = config.name if len(names) == 1 else f"{config.name}-{chosen}"
        return replace(state.schema, name=name or default)
    finally:
        if audit is not None:
            audit.close()


@main.command("diff")
@click.argument("manifest", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("other", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the differences as JSON.")
@one_line_errors
def diff_command(manifest: Path, other: Path, as_json: bool) -> None:
    """Compare MANIFEST with OTHER (a database file or another manifest).

    Changed SQL is shown as a word diff: [-as in MANIFEST-]{+as in OTHER+}.
    Exit code: 0 equal, 1 drift, 2 bad input.
    """
    from persistaudit import schema
    from persistaudit.diff import diff, group_by_table
    from persistaudit.manifest import load_manifest

    expected = load_manifest(manifest)
    if not other.is_file():
        fail(f"{other}: file not found")
    with other.open("rb") as fh:
        head = fh.read(len(MAGIC))
    if other.suffix in (".yaml", ".yml") and not is_sqlite(head):
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
            click.echo(f"  {printable(table)}")
            for item in items:
                click.echo(f"    {item.describe()}")
    sys.exit(1 if found else 0)


@main.command()
@click.argument("results", type=click.Path(dir_okay=False, path_type=Path))
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True)
@click.option("--format", "fmt", type=click.Choice(["md", "html"]), default="md", show_default=True)
@one_line_errors
def report(results: Path, output: Path, fmt: str) -> None:
    """Render the report again from a saved results.json (the same bytes every time)."""
    from persistaudit.documents import read_results
    from persistaudit.report import render_html, render_markdown

    doc = read_results(results)
    base = results.parent  # host paths relative to the folder of results.json
    text = render_html(doc, base=base) if fmt == "html" else render_markdown(doc, base=base)
    write_output(output, text)


@main.command()
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--comment", default="persistaudit auditor key", show_default=True)
@one_line_errors
def keygen(path: Path, comment: str) -> None:
    """Make an Ed25519 key pair: PATH (private, mode 600) and PATH.pub (OpenSSH format)."""
    from persistaudit import signing

    private, public = signing.keygen(path, comment)
    key = signing.load_public_key(public)
    click.echo(f"wrote {private} and {public} ({signing.fingerprint(key)})")
    click.echo(
        "for an allowed_signers file (put your identity first): IDENTITY "
        f'namespaces="{signing.NAMESPACE}" {signing.openssh_public(key)}'
    )


@main.command()
@click.argument("folder", type=click.Path(file_okay=False, exists=True, path_type=Path))
@click.option(
    "--key",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="Ed25519 private key (persistaudit keygen, or an OpenSSH id_ed25519).",
)
@click.option("--auditor", required=True, help="Who signs.")
@click.option("--role", required=True, help="In which role.")
@one_line_errors
def sign(folder: Path, key: Path, auditor: str, role: str) -> None:
    """Sign a report folder: report.md gets the sign-off block; signature.json, SHA256SUMS
    and SHA256SUMS.sig (ssh-keygen's format) cover all files."""
    from persistaudit import signing
    from persistaudit.documents import read_results
    from persistaudit.report import render_html, render_markdown

    signing.check_folder(folder)  # before anything is written: nothing through a link
    doc = read_results(folder / "results.json")
    private = signing.load_private_key(key)
    signoff = signing.signoff_block(private.public_key(), auditor, role, signing.now_utc())
    report_md = render_markdown(doc, signoff, base=folder)
    (folder / "report.md").write_text(report_md, encoding="utf-8")
    if (folder / "report.html").exists():
        report_html = render_html(doc, signoff, base=folder)
        (folder / "report.html").write_text(report_html, encoding="utf-8")
    target = signing.sign(folder, private, signoff)
    click.echo(f"signed {folder} as {auditor} ({role}) with {signoff['fingerprint']}: {target}")


@main.command()
@click.argument("folder", type=click.Path(file_okay=False, exists=True, path_type=Path))
@click.option(
    "--pubkey",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Only accept a signature by this key (OpenSSH public key).",
)
@click.option(
    "--allowed-signers",
    "signers_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Only accept a signer this OpenSSH allowed-signers file allows (ssh-keygen -Y verify -f).",
)
@click.option(
    "--identity",
    help="With --allowed-signers: the signer must be allowed as this identity (ssh-keygen -I).",
)
@one_line_errors
def verify(
    folder: Path, pubkey: Path | None, signers_file: Path | None, identity: str | None
) -> None:
    """Check a signed report folder. Exit code: 0 valid, 1 invalid or changed, 2 bad input."""
    from persistaudit import signing

    if identity is not None and signers_file is None:
        fail("--identity goes with --allowed-signers FILE (the file that lists the identity)")
    from persistaudit import allowed_signers

    trust = signing.Trust(
        key=signing.load_public_key(pubkey) if pubkey else None,
        signers=allowed_signers.load(signers_file) if signers_file else None,
        signers_file=signers_file,
        identity=identity,
    )
    result = signing.verify(folder, trust=trust)
    if not result.ok:
        for problem in result.problems:
            click.echo(f"INVALID: {one_line(problem)}", err=True)
        sys.exit(1)
    who = {k: one_line(v) for k, v in result.signer.items()}
    if who:
        # The fingerprint of the key that verified the signature, never the claimed one.
        click.echo(
            f"valid: signed by {who['auditor']} ({who['role']}) at {who['signed_at']} "
            f"with {result.fingerprint}"
        )
    if result.ssh_fingerprint:
        allowed = (
            f" for {one_line(', '.join(result.principals))} ({signers_file})"
            if result.principals
            else ""
        )
        click.echo(
            f"valid: {signing.SUMS_FILE} and {signing.SUMS_SIGNATURE}: a good "
            f'"{signing.NAMESPACE}" signature with {result.ssh_fingerprint}{allowed}'
        )
    else:
        click.echo(
            f"note: no {signing.SUMS_SIGNATURE} (signed by an earlier persistaudit): sign the "
            "folder again to make it checkable with sha256sum and ssh-keygen"
        )
    if trust.key is None and trust.signers is None:
        click.echo(
            "note: no --pubkey or --allowed-signers given, so the signer's key itself was "
            "not checked"
        )


@main.command("compare")
@click.argument("old", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("new", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the changes as JSON.")
@one_line_errors
def compare_command(old: Path, new: Path, as_json: bool) -> None:
    """List the checks and metrics that regressed or improved from OLD to NEW results.

    Exit code: 0 when nothing regressed, 1 when something did, 2 on bad input.
    """
    from persistaudit.compare import compare
    from persistaudit.documents import read_results

    changes = compare(read_results(old), read_results(new))
    if as_json:
        click.echo(json.dumps([asdict(c) for c in changes], indent=2))
    elif not changes:
        click.echo("no change in verdict, checks or metrics")
    else:
        for change in changes:
            click.echo(change.describe())
    sys.exit(1 if any(c.kind == "regressed" for c in changes) else 0)


@main.command()
@click.option(
    "--all",
    "everything",
    is_flag=True,
    help="Also what live runs, kept runs and runs on other hosts use (stops those audits).",
)
@click.option(
    "--run",
    "only",
    metavar="RUN_ID",
    multiple=True,
    help="Only this run's resources, whatever its state (a run kept with run --keep).",
)
@one_line_errors
def clean(everything: bool, only: tuple[str, ...]) -> None:
    """Remove the containers, volumes and networks of persistaudit runs that have ended.

    A run still alive on this host keeps its resources, and so do runs kept with
    `run --keep` and runs on other hosts (which cannot be checked from here): --run RUN_ID
    removes one of them, --all all of them.
    """
    from persistaudit import cleanup, engine, keep

    client = engine.connect()
    runs: dict[str, list[cleanup.Resource]] = {}
    for resource in cleanup.list_resources(client, label=f"{engine.LABEL_MANAGED}=true"):
        runs.setdefault(resource.labels.get(engine.LABEL_RUN, ""), []).append(resource)
    kept_runs = keep.kept_runs()
    for run_id in set(kept_runs) - set(runs):
        if kept_runs[run_id].engine == os.environ.get("DOCKER_HOST", ""):
            keep.forget(run_id)  # removed by hand (docker rm -f, docker volume rm)
    if only:
        runs = {run_id: resources for run_id, resources in runs.items() if run_id in only}
    kept = removed = 0
    for run_id, resources in sorted(runs.items()):
        owner = resources[0].labels
        why_kept = "" if everything or only else engine.owner_alive(owner)
        if not why_kept and run_id in kept_runs and not (everything or only):
            why_kept = (
                f"kept with --keep at {kept_runs[run_id].kept_at}; "
                f"`persistaudit clean --run {run_id}` removes it"
            )
        if why_kept:
            for resource in resources:
                click.echo(f"left {resource}: {why_kept}")
            kept += len(resources)
            continue
        target = owner.get(engine.LABEL_TARGET, "")
        if run_id and target:
            prefix = engine.run_prefix(target, run_id)
            removal = cleanup.remove_run(run_id, prefix, client=client)
            removal.removed += cleanup.remove_scratch(prefix)
        else:
            removal = cleanup.remove_resources(client, resources)
        if not removal.left:
            keep.forget(run_id)
        why = "--all" if everything else f"--run {run_id}" if only else _ended(owner)
        for item in removal.removed:
            click.echo(f"removed {item} ({why})")
        for item, problem in removal.left.items():
            click.echo(f"could not remove {item}: {problem}", err=True)
        removed += len(removal.removed)
    if not runs:
        click.echo(f"nothing to remove{' for run ' + ', '.join(only) if only else ''}")
    elif kept and not everything:
        click.echo(
            f"{removed} removed, {kept} left (in use, kept or elsewhere); --all removes them"
        )


def _ended(owner: dict[str, str]) -> str:
    from persistaudit import engine

    run = owner.get(engine.LABEL_RUN, "?")
    return f"run {run}: pid {owner.get(engine.LABEL_OWNER_PID, '?')} has ended"

"""BuildKit-only Dockerfiles are recognised, and built through a docker CLI that has BuildKit
(fake CLIs here: which one is chosen, with which arguments, and what is said without one)."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from persistaudit import buildkit
from persistaudit.docker_context import Endpoint
from persistaudit.exceptions import ImageError

LOCAL = Endpoint("unix:///var/run/docker.sock", "default", "default")
REMOTE = Endpoint("ssh://ci@runner", "remote", "DOCKER_CONTEXT")


@pytest.mark.parametrize(
    ("line", "why"),
    [
        ("RUN --mount=type=cache,target=/root/.cache pip install -r req.txt", "RUN --mount"),
        ("run --network=none make", "RUN --network"),
        ("RUN --security=insecure true", "RUN --security"),
        ("COPY --chmod=755 entry.sh /", "COPY/ADD --chmod"),
        ("COPY --from=build --link /out /app", "COPY/ADD --link"),
        ("ADD --checksum=sha256:00 https://x/y /y", "COPY/ADD --checksum"),
        ("RUN <<EOF", "a heredoc"),
        ("COPY <<-'CONF' /etc/app.conf", "a heredoc"),
    ],
)
def test_buildkit_only_instructions_are_recognised(line: str, why: str) -> None:
    dockerfile = f"FROM base\nWORKDIR /app\n{line}\n"
    assert buildkit.needs_buildkit(dockerfile) == f"{why} at line 3"


def test_a_syntax_directive_needs_buildkit_only_as_the_first_line() -> None:
    assert buildkit.needs_buildkit("# syntax=docker/dockerfile:1\nFROM x\n") == (
        "a # syntax= directive at line 1"
    )
    assert buildkit.needs_buildkit("FROM x\n# syntax=docker/dockerfile:1\n") == ""


@pytest.mark.parametrize(
    "dockerfile",
    [
        "FROM x\nRUN echo --mount\n",  # a word in the command, not a flag of RUN
        "FROM x\nCOPY --from=build /out /app\n",  # the legacy builder knows --from
        "FROM x\nRUN apt-get install -y curl && echo '<<' \n",
        (Path(__file__).parents[2] / "fixtures/targets/notes-app/Dockerfile").read_text(),
    ],
)
def test_plain_dockerfiles_stay_with_the_legacy_builder(dockerfile: str) -> None:
    assert buildkit.needs_buildkit(dockerfile) == ""


def test_the_planted_fixture_needs_buildkit() -> None:
    path = Path(__file__).parents[2] / "fixtures/targets/notes-app/Dockerfile.buildkit"
    assert buildkit.needs_buildkit(path.read_text()).startswith("RUN --mount at line ")


def test_the_legacy_builder_s_refusal_is_recognised() -> None:
    assert buildkit.refused_by_legacy(
        "build: building ctx failed: the --mount option requires BuildKit. Refer to ..."
    )
    assert not buildkit.refused_by_legacy("build: building ctx failed: no such file")


def fake_cli(folder: Path, *, version: str, buildx: bool) -> Path:
    """A docker CLI that answers `version` and `buildx version`, and logs each call; its
    build writes an image id to --iidfile."""
    folder.mkdir(parents=True, exist_ok=True)
    log = folder / "calls.jsonl"
    script = folder / "docker"
    script.write_text(
        f"""#!/usr/bin/env python3
import json, os, sys
args = sys.argv[1:]
with open({str(log)!r}, "a") as fh:
    fh.write(json.dumps({{"args": args, "buildkit": os.environ.get("DOCKER_BUILDKIT")}}) + "\\n")
rest = args[2:] if args[:1] == ["--context"] else args
if rest[:2] == ["version", "--format"]:
    print({version!r})
    sys.exit(0)
if rest[:2] == ["buildx", "version"]:
    sys.exit(0 if {buildx!r} else 1)
if "build" in rest:
    if "BROKEN" in os.environ.get("FAKE_BUILD", ""):
        print("#5 ERROR: process did not complete successfully", file=sys.stderr)
        sys.exit(1)
    with open(args[args.index("--iidfile") + 1], "w") as fh:
        fh.write("sha256:" + "ab" * 32)
    sys.exit(0)
sys.exit(2)
"""
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return script


def calls(cli: Path) -> list[dict[str, object]]:
    lines = (cli.parent / "calls.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


def test_buildx_is_chosen_where_there_is_one(tmp_path: Path) -> None:
    cli = fake_cli(tmp_path / "bin", version="28.2.2", buildx=True)
    builder = buildkit.find_builder(LOCAL, path=str(cli.parent))
    assert isinstance(builder, buildkit.Builder)
    assert builder.command == (str(cli), "buildx", "build", "--load")
    assert builder.env == {}


def test_a_cli_before_23_builds_with_its_own_buildkit(tmp_path: Path) -> None:
    new = fake_cli(tmp_path / "new", version="28.2.2", buildx=False)
    old = fake_cli(tmp_path / "old", version="20.10.24+dfsg1", buildx=False)
    builder = buildkit.find_builder(LOCAL, path=f"{new.parent}:{old.parent}")
    assert isinstance(builder, buildkit.Builder)
    assert builder.command == (str(old), "build")
    assert builder.env == {"DOCKER_BUILDKIT": "1"}


def test_without_any_it_says_what_was_found(tmp_path: Path) -> None:
    new = fake_cli(tmp_path / "new", version="28.2.2", buildx=False)
    assert buildkit.find_builder(LOCAL, path=str(new.parent)) == (
        f"{new} (client 28) has no buildx plugin"
    )
    assert buildkit.find_builder(LOCAL, path=str(tmp_path / "empty")) == "no docker CLI on PATH"


def test_a_context_s_engine_is_the_one_built_on(tmp_path: Path) -> None:
    cli = fake_cli(tmp_path / "bin", version="28.2.2", buildx=True)
    builder = buildkit.find_builder(REMOTE, path=str(cli.parent))
    assert isinstance(builder, buildkit.Builder)
    assert builder.command[:3] == (str(cli), "--context", "remote")


def test_the_build_passes_the_file_args_and_tag_and_returns_the_iidfile_s_id(
    tmp_path: Path,
) -> None:
    cli = fake_cli(tmp_path / "bin", version="20.10.24", buildx=False)
    builder = buildkit.find_builder(LOCAL, path=str(cli.parent))
    assert isinstance(builder, buildkit.Builder)
    image_id = buildkit.build(
        builder,
        context=tmp_path / "ctx",
        dockerfile="Dockerfile.buildkit",
        args={"DEFECT": "none"},
        tag="persistaudit/demo:audit",
        where="audit.yaml: build",
    )
    assert image_id == "sha256:" + "ab" * 32
    build = calls(cli)[-1]
    assert build["buildkit"] == "1"
    args = build["args"]
    assert isinstance(args, list)
    assert args[0] == "build"
    assert args[args.index("--file") + 1] == str(tmp_path / "ctx" / "Dockerfile.buildkit")
    assert args[args.index("--tag") + 1] == "persistaudit/demo:audit"
    assert args[args.index("--build-arg") + 1] == "DEFECT=none"
    assert args[-1] == str(tmp_path / "ctx")


def test_a_failed_build_quotes_its_error_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cli = fake_cli(tmp_path / "bin", version="28.0.1", buildx=True)
    builder = buildkit.find_builder(LOCAL, path=str(cli.parent))
    assert isinstance(builder, buildkit.Builder)
    monkeypatch.setenv("FAKE_BUILD", "BROKEN")
    with pytest.raises(ImageError) as caught:
        buildkit.build(
            builder, context=tmp_path, dockerfile="Dockerfile", args={}, tag="t", where="a: build"
        )
    assert str(caught.value) == (
        f"a: build: building {tmp_path} with {cli} buildx failed (exit 1): "
        "#5 ERROR: process did not complete successfully"
    )

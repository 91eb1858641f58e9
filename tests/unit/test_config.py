from __future__ import annotations

from pathlib import Path

import pytest

from persistaudit.config import ExecStep, load_config
from persistaudit.exceptions import ConfigError
from tests.helpers import GOOD_CONFIG


def write(config_dir: Path, text: str) -> Path:
    path = config_dir / "audit.yaml"
    path.write_text(text)
    return path


def test_good_config_loads_with_paths_resolved(config_dir: Path) -> None:
    config = load_config(config_dir / "audit.yaml")
    assert config.name == "demo"
    assert config.image_ref == "example/demo:1"
    assert config.expect.manifest == (config_dir / "manifest.yaml").resolve()
    assert config.expect.journal_mode == "wal"
    assert config.canary.write[0].json_body == {"name": "{marker}"}


def test_bundled_configs_load() -> None:
    from tests.helpers import NOTES_APP

    for path in [NOTES_APP / "audit.yaml", *sorted((NOTES_APP / "defects").glob("*.yaml"))]:
        config = load_config(path)
        assert config.build is not None
        assert config.build.context == NOTES_APP


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (
            "  path: /data/app.db\n",
            "  path: data/app.db\n",
            r"audit.yaml:6: database.path: must be an absolute path inside the container",
        ),
        (
            "  records: 3\n",
            "  records: lots\n",
            r"audit.yaml:12: canary.records: Input should be a valid integer",
        ),
        (
            "name: demo\n",
            "name: demo\nvolumes: []\n",
            r"audit.yaml:2: volumes: Extra inputs are not permitted",
        ),
        ("image: example/demo:1\n", "", r"audit.yaml:1: give exactly one of image or build"),
        (
            "  http: {path: /health, port: 8080}\n",
            "  log: 'ready'\n  http: {path: /, port: 1}\n",
            r"readiness: give exactly one of http, log, command or healthcheck",
        ),
        (
            'json: {name: "{marker}"}',
            'json: {name: "{nonce}"}',
            r"canary.write.0: unknown placeholder \{nonce\}",
        ),
        ("volume:\n  mount: /data\n", "", r"audit.yaml:1: volume: Field required"),
    ],
)
def test_errors_name_file_line_and_field(
    config_dir: Path, old: str, new: str, expected: str
) -> None:
    assert old in GOOD_CONFIG
    path = write(config_dir, GOOD_CONFIG.replace(old, new))
    with pytest.raises(ConfigError, match=expected) as info:
        load_config(path)
    assert "\n" not in str(info.value)


def test_malformed_yaml_gives_line_and_column(config_dir: Path) -> None:
    path = write(config_dir, GOOD_CONFIG.replace("  mount: /data\n", "  mount: [/data\n"))
    with pytest.raises(ConfigError, match=r"audit.yaml:\d+:\d+: malformed YAML"):
        load_config(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nope\.yaml: file not found"):
        load_config(tmp_path / "nope.yaml")


def test_top_level_must_be_a_mapping(config_dir: Path) -> None:
    with pytest.raises(ConfigError, match="expected a mapping"):
        load_config(write(config_dir, "- a\n- b\n"))


def test_missing_build_context_and_manifest(config_dir: Path) -> None:
    text = GOOD_CONFIG.replace("image: example/demo:1\n", "build:\n  context: ./nowhere\n")
    with pytest.raises(ConfigError, match=r"build.context: folder .*nowhere does not exist"):
        load_config(write(config_dir, text))
    (config_dir / "manifest.yaml").unlink()
    with pytest.raises(ConfigError, match=r"expect.manifest: file .*manifest.yaml not found"):
        load_config(write(config_dir, GOOD_CONFIG))


def test_environment_interpolation(config_dir: Path) -> None:
    text = GOOD_CONFIG.replace("example/demo:1", "${DEMO_IMAGE:-example/demo:2}")
    path = write(config_dir, text)
    assert load_config(path, environ={}).image_ref == "example/demo:2"
    assert load_config(path, environ={"DEMO_IMAGE": "x/y:3"}).image_ref == "x/y:3"
    path = write(config_dir, GOOD_CONFIG.replace("hunter2", "${DEMO_TOKEN}"))
    with pytest.raises(ConfigError, match="environment variable DEMO_TOKEN is not set"):
        load_config(path, environ={})


EXEC_CANARY = """\
canary:
  records: 3
  write:
    - exec: [memory-cli, remember, "{marker}", "canary {i} of {run}"]
      stdin: '{"id": {i}, "method": "remember"}'
      expect_output_contains: "{marker}"
  read:
    - exec: [memory-cli, recall, "{marker}"]
      expect_exit: 0
      timeout: 3
"""


def with_canary(config_dir: Path, canary: str) -> Path:
    head, _, rest = GOOD_CONFIG.partition("canary:\n")
    return write(config_dir, head + canary + rest[rest.index("expect:") :])


def test_exec_steps_load_with_their_defaults(config_dir: Path) -> None:
    config = load_config(with_canary(config_dir, EXEC_CANARY))
    assert config.canary.kind == "exec"
    step, read = config.canary.write[0], config.canary.read[0]
    assert isinstance(step, ExecStep)
    assert isinstance(read, ExecStep)
    assert step.argv == ["memory-cli", "remember", "{marker}", "canary {i} of {run}"]
    assert step.stdin == '{"id": {i}, "method": "remember"}'
    assert (step.expect_exit, step.timeout, step.expect_output_contains) == (0, 10.0, "{marker}")
    assert (read.stdin, read.timeout) == (None, 3.0)


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (
            '"canary {i} of {run}"]',
            '"canary {nonce}"]',
            r"audit.yaml:14: canary.write.0: unknown placeholder \{nonce\}",
        ),
        (
            'stdin: \'{"id": {i}',
            'stdin: \'{"id": {id}',
            r"canary.write.0: unknown placeholder \{id\}",
        ),
        (
            'expect_output_contains: "{marker}"',
            'expect_output_contains: "{mark}"',
            r"canary.write.0: unknown placeholder \{mark\}",
        ),
        (
            'exec: [memory-cli, recall, "{marker}"]',
            "exec: []",
            r"audit.yaml:18: canary.read.0.exec: List should have at least 1 item",
        ),
        (
            'exec: [memory-cli, recall, "{marker}"]',
            "exec: ['', x]",
            r"canary.read.0: exec: the command \(its first word\) is empty",
        ),
        (
            "expect_exit: 0",
            "expect_exit: 256",
            r"audit.yaml:19: canary.read.0.expect_exit: Input should be less than or equal to 255",
        ),
        (
            "timeout: 3",
            "timeout: 0",
            r"audit.yaml:20: canary.read.0.timeout: Input should be greater",
        ),
        ("timeout: 3", "port: 8080", r"audit.yaml:20: canary.read.0.port: Extra inputs"),
        (
            '    - exec: [memory-cli, recall, "{marker}"]\n'
            "      expect_exit: 0\n      timeout: 3\n",
            "    - {path: /x, port: 1}\n",
            r"audit.yaml:12: canary: the write and read steps are all HTTP \(path, port\) or all "
            "exec",
        ),
    ],
)
def test_exec_step_errors_name_file_line_and_field(
    config_dir: Path, old: str, new: str, expected: str
) -> None:
    assert old in EXEC_CANARY
    path = with_canary(config_dir, EXEC_CANARY.replace(old, new))
    with pytest.raises(ConfigError, match=expected) as info:
        load_config(path)
    assert "\n" not in str(info.value)

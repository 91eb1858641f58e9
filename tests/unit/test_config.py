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

    variants = sorted((NOTES_APP / "variants").glob("*.yaml"))
    for path in [
        NOTES_APP / "audit.yaml",
        *sorted((NOTES_APP / "defects").glob("*.yaml")),
        *variants,
    ]:
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
        (
            "image: example/demo:1\n",
            "",
            r"audit.yaml:1: give exactly one of image, build or compose",
        ),
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


DATABASES = """databases:
  - {name: main, path: /data/app.db, manifest: manifest.yaml}
  - name: vectors
    path: /data/vectors.db
    manifest: manifest.yaml
    journal_mode: delete
    persist: false
    volatile: [licence_usage]
"""


def several(text: str = DATABASES) -> str:
    return GOOD_CONFIG.replace("database:\n  path: /data/app.db\n", text).replace(
        "expect:\n  manifest: manifest.yaml\n", ""
    )


def test_the_shorthand_is_one_database_named_main(config_dir: Path) -> None:
    config = load_config(config_dir / "audit.yaml")
    [main] = config.declared_databases
    assert (main.name, main.path, main.journal_mode, main.persist) == (
        "main",
        "/data/app.db",
        "wal",
        True,
    )
    assert main.manifest == (config_dir / "manifest.yaml").resolve()
    assert not config.per_database_ids
    assert config.check_id("volume.mount", "main") == "volume.mount"


def test_a_databases_list_loads_with_manifests_resolved(config_dir: Path) -> None:
    config = load_config(write(config_dir, several()))
    _, vectors = config.declared_databases
    assert vectors.manifest == (config_dir / "manifest.yaml").resolve()
    assert (vectors.journal_mode, vectors.persist, vectors.volatile) == (
        "delete",
        False,
        ["licence_usage"],
    )
    assert config.check_id("volume.mount", "vectors") == "volume.mount[vectors]"


def test_table_kinds_load_and_default_to_none(config_dir: Path) -> None:
    [shorthand] = load_config(config_dir / "audit.yaml").declared_databases
    assert (shorthand.append_only, shorthand.immutable) == ([], [])
    kinds = "    append_only: [audit_log, events]\n    immutable: [plans]\n"
    main, vectors = load_config(write(config_dir, several(DATABASES + kinds))).declared_databases
    assert (vectors.append_only, vectors.immutable) == (["audit_log", "events"], ["plans"])
    assert (main.volatile, main.append_only, main.immutable) == ([], [], [])


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (GOOD_CONFIG + DATABASES, r"give exactly one of database \(with expect\) or databases"),
        (GOOD_CONFIG.replace("expect:\n  manifest: manifest.yaml\n", ""), "expect is required"),
        (
            several() + "expect: {manifest: manifest.yaml}\n",
            "expect goes with database; under databases, each has its own",
        ),
        (several(DATABASES.replace("name: vectors", "name: main")), "two databases have the name"),
        (
            several(DATABASES.replace("/data/vectors.db", "/data/app.db")),
            "two databases have the path /data/app.db",
        ),
        (several(DATABASES.replace("name: vectors", "name: Vectors")), r"databases\.1\.name"),
        (several("databases: []\n"), "databases: List should have at least 1 item"),
        (
            several(DATABASES.replace("manifest: manifest.yaml}", "manifest: nowhere.yaml}")),
            r"databases\.0\.manifest: file .*nowhere\.yaml not found",
        ),
        (
            several(DATABASES + "    immutable: [licence_usage]\n"),
            r"databases\.1: .*table 'licence_usage' is listed under both volatile and immutable",
        ),
        (several(DATABASES + "    append_only: ['']\n"), r"databases\.1\.append_only\.0"),
    ],
)
def test_bad_databases_lists_name_the_problem(config_dir: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(write(config_dir, text))


# -- compose targets --------------------------------------------------------------------------

COMPOSE_CONFIG = GOOD_CONFIG.replace("image: example/demo:1\n", "").replace(
    "volume:\n  mount: /data\n",
    "compose:\n  file: app/compose.yaml\n  service: web\n  env_files: [app/prod.env]\n"
    "  profiles: [audit]\n",
)


@pytest.fixture
def compose_dir(config_dir: Path) -> Path:
    (config_dir / "app").mkdir()
    (config_dir / "app" / "compose.yaml").write_text("services: {web: {image: x}}\n")
    (config_dir / "app" / "prod.env").write_text("A=1\n")
    return config_dir


def test_a_compose_config_loads_with_its_paths_resolved(compose_dir: Path) -> None:
    config = load_config(write(compose_dir, COMPOSE_CONFIG))
    assert config.compose is not None
    assert config.compose.file == (compose_dir / "app" / "compose.yaml").resolve()
    assert config.compose.env_files == [(compose_dir / "app" / "prod.env").resolve()]
    assert config.compose.profiles == ["audit"]
    assert config.compose.bind_mounts == "redirect"
    assert config.compose.project_name is None
    assert config.volume is None
    assert config.image_ref == "service web of compose.yaml"


def test_the_bundled_compose_configs_load() -> None:
    from tests.helpers import REPO

    folder = REPO / "fixtures" / "targets" / "notes-app-compose"
    for path in [folder / "audit.yaml", *sorted((folder / "defects").glob("*.yaml"))]:
        config = load_config(path)
        assert config.compose is not None
        assert config.compose.file == folder / "compose.yaml"
        assert config.compose.service == "notes"


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (
            "compose:\n",
            "image: example/demo:1\ncompose:\n",
            r"audit.yaml:1: give exactly one of image, build or compose",
        ),
        (
            "name: demo\n",
            "name: demo\nvolume: {mount: /data}\n",
            r"audit.yaml:2: volume: not used with compose: the compose file says where volumes",
        ),
        (
            "name: demo\n",
            "name: demo\nrestart_policy: always\n",
            r"audit.yaml:2: restart_policy: not used with compose",
        ),
        (
            "  file: app/compose.yaml\n",
            "  file: app/missing.yaml\n",
            r"audit.yaml: compose.file: file .*app/missing.yaml not found",
        ),
        (
            "  env_files: [app/prod.env]\n",
            "  env_files: [app/prod.env, app/none.env]\n",
            r"audit.yaml: compose.env_files.1: file .*app/none.env not found",
        ),
        (
            "  service: web\n",
            "  service: web\n  bind_mounts: copy\n",
            r"audit.yaml:\d+: compose.bind_mounts: Input should be 'redirect' or 'read-only'",
        ),
        (
            "  service: web\n",
            "  service: web\n  project_name: My.Project\n",
            r"audit.yaml:\d+: compose.project_name: String should match pattern",
        ),
        (
            "  service: web\n",
            "",
            r"audit.yaml:\d+: compose.service: Field required",
        ),
    ],
)
def test_compose_errors_name_file_line_and_field(
    compose_dir: Path, old: str, new: str, expected: str
) -> None:
    assert old in COMPOSE_CONFIG
    with pytest.raises(ConfigError, match=expected):
        load_config(write(compose_dir, COMPOSE_CONFIG.replace(old, new)))


@pytest.mark.parametrize(
    ("readiness", "expected"),
    [
        ("{healthcheck: {test: [CMD, 'true'], interval: 0.5, retries: 2}}", None),
        ("{healthcheck: true}", None),
        (
            "{healthcheck: {test: [curl, -f, 'http://x']}}",
            r"readiness.healthcheck.*test starts with CMD .* or CMD-SHELL",
        ),
        ("{healthcheck: {test: [CMD]}}", r"readiness.healthcheck.*test: List should have at least"),
        ("{healthcheck: {test: [CMD, x], interval: 0}}", r"interval: Input should be greater"),
        ("{healthcheck: false}", r"readiness.healthcheck"),
    ],
)
def test_a_healthcheck_override(config_dir: Path, readiness: str, expected: str | None) -> None:
    text = GOOD_CONFIG.replace("  http: {path: /health, port: 8080}\n", "").replace(
        "readiness:\n", f"readiness: {readiness}\n"
    )
    path = write(config_dir, text)
    if expected is None:
        assert load_config(path).readiness.healthcheck
        return
    with pytest.raises(ConfigError, match=expected):
        load_config(path)


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
            'exec: [memory-cli, recall, "{session}"]',
            r"canary.read.0: unknown placeholder \{session\}",
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

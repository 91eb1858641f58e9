"""What another auditor needs to reproduce an audit: container settings and canary steps."""

from __future__ import annotations

import shlex
from typing import Any

import yaml

from persistaudit.config import CanarySpec, ReadinessSpec
from persistaudit.redact import MARKER
from persistaudit.report import render_markdown, step_details
from persistaudit.reproduce import container_settings, readiness, run_command, scenario
from tests.unit.test_report import results

# An engine's inspect record, cut to what is read (the shape `docker inspect` prints).
INSPECT: dict[str, Any] = {
    "Name": "/persistaudit-notes-app-1a2b3c4d-2",
    "Image": "sha256:" + "ab" * 32,
    "Config": {
        "Image": "persistaudit/notes-app:audit",
        "Entrypoint": ["python3", "-u"],
        "Cmd": ["/app/notes_app.py", "--title", "two words"],
        "User": "app",
        "WorkingDir": "/app",
        "Env": [
            "PATH=/usr/local/bin:/usr/bin",
            "LANG=C.UTF-8",
            "NOTES_DB_PATH=/data/notes.db",
            "NOTES_ADMIN_PASSWORD=hunter2-long",
        ],
        "Healthcheck": {"Test": ["CMD", "python3", "/app/health.py"]},
        "Labels": {"io.persistaudit.run": "1a2b3c4d"},
    },
    "HostConfig": {
        "RestartPolicy": {"Name": "on-failure", "MaximumRetryCount": 3},
        "Tmpfs": {"/tmp": ""},
        "NetworkMode": "bridge",
        "ReadonlyRootfs": True,
    },
    "NetworkSettings": {
        "Ports": {
            "8080/tcp": [{"HostIp": "127.0.0.1", "HostPort": "49153"}],
            "9090/tcp": None,
        }
    },
    "Mounts": [
        {
            "Type": "volume",
            "Name": "persistaudit-notes-app-1a2b3c4d",
            "Source": "/var/lib/x",
            "Destination": "/data",
            "RW": True,
        },
        {"Type": "bind", "Source": "/srv/config", "Destination": "/config", "RW": False},
    ],
}
IMAGE_ENV = ["PATH=/usr/local/bin:/usr/bin", "LANG=C.UTF-8", "NOTES_DB_PATH=/image/default.db"]


def test_settings_are_the_engines_with_the_runs_environment_apart() -> None:
    settings = container_settings(INSPECT, IMAGE_ENV)

    assert settings["name"] == "persistaudit-notes-app-1a2b3c4d-2"
    assert settings["entrypoint"] == ["python3", "-u"]
    assert settings["command"] == ["/app/notes_app.py", "--title", "two words"]
    # Set by the run (a value the image has differently counts as the run's), apart from the
    # image's own variables, which are named only.
    assert settings["env"] == {
        "NOTES_DB_PATH": "/data/notes.db",
        "NOTES_ADMIN_PASSWORD": "hunter2-long",
    }
    assert settings["image_env"] == ["LANG", "PATH"]
    assert settings["ports"] == [
        "8080/tcp published on 127.0.0.1:49153",
        "9090/tcp (not published)",
    ]
    assert settings["mounts"] == [
        {
            "type": "volume",
            "source": "persistaudit-notes-app-1a2b3c4d",
            "destination": "/data",
            "rw": True,
        },
        {"type": "bind", "source": "/srv/config", "destination": "/config", "rw": False},
    ]
    assert settings["restart_policy"] == "on-failure:3"
    assert settings["healthcheck"] == ["CMD", "python3", "/app/health.py"]
    assert settings["tmpfs"] == ["/tmp"]
    assert settings["read_only"] is True
    assert "labels" not in settings  # whose run it was: nothing a reproducer needs
    # A variable the config sets is the run's, even with the value the image has.
    assert container_settings(INSPECT, IMAGE_ENV, run_env=["LANG"])["image_env"] == ["PATH"]


def test_settings_of_a_sparse_record_have_every_field() -> None:
    settings = container_settings({"Name": "/x", "Config": {"Image": "img"}})
    assert settings["entrypoint"] == settings["command"] == settings["ports"] == []
    assert settings["restart_policy"] == "no"
    assert settings["env"] == {}


def test_run_command_starts_the_same_container_and_asks_for_secrets() -> None:
    command = run_command(container_settings(INSPECT, IMAGE_ENV))
    words = shlex.split(command)

    assert words[:3] == ["docker", "run", "-d"]
    assert "hunter2-long" not in command
    # docker run -e NAME takes the value from the caller's environment.
    assert words[words.index("NOTES_ADMIN_PASSWORD") - 1] == "-e"
    assert "NOTES_DB_PATH=/data/notes.db" in words
    assert "persistaudit-notes-app-1a2b3c4d:/data" in words
    assert "/srv/config:/config:ro" in words
    assert words[words.index("--restart") + 1] == "on-failure:3"
    assert words[words.index("-p") + 1] == "8080"
    assert "9090" not in words  # exposed, never published
    assert "--read-only" in words
    assert words[words.index("--tmpfs") + 1] == "/tmp"
    assert words[words.index("--user") + 1] == "app"
    assert words[words.index("--entrypoint") + 1] == "python3"
    assert words[-5:] == ["sha256:" + "ab" * 32, "-u", "/app/notes_app.py", "--title", "two words"]
    assert run_command({}) == ""


CANARY = """
records: 5
setup:
  - {method: POST, path: /login, port: 8080, form: {user: admin, password: s3cret-pass}}
  - path: /csrf-token
    port: 8080
    capture: {csrf: {json: csrf}}
write:
  - method: POST
    path: /notes
    port: 8080
    headers: {X-CSRF-Token: "{capture.csrf}", Authorization: "Bearer tok-123456"}
    json: {title: "{marker}", auth: {api_key: k-987654, scope: [read]}}
    expect_status: 201
    capture: {id: {json: id, secret: false}}
read:
  - path: "/notes/{capture.id}"
    port: 8080
    expect_json: {title: "{marker}"}
"""


def test_scenario_lists_every_step_in_order_with_secret_values_hidden() -> None:
    steps = scenario(CanarySpec.model_validate(yaml.safe_load(CANARY)))

    assert [(s["phase"], s["request"]) for s in steps] == [
        ("setup (per session)", "POST :8080/login"),
        ("setup (per session)", "GET :8080/csrf-token"),
        ("write (x 5 records)", "POST :8080/notes"),
        ("read (x 5 records)", "GET :8080/notes/{capture.id}"),
    ]
    assert steps[0]["form"] == {"user": "admin", "password": MARKER}
    assert steps[1]["capture"] == "csrf from JSON path 'csrf' (secret)"
    # A placeholder is no secret (the captured value is redacted wherever it appears).
    assert steps[2]["headers"] == {"X-CSRF-Token": "{capture.csrf}", "Authorization": MARKER}
    assert steps[2]["json"] == {"title": "{marker}", "auth": MARKER}
    assert steps[2]["expect"] == "status 201"
    assert steps[2]["capture"] == "id from JSON path 'id'"
    assert steps[3]["expect"] == 'status 200, title = "{marker}"'
    text = repr(steps)
    for secret in ("s3cret-pass", "tok-123456", "k-987654"):
        assert secret not in text


def test_secret_members_are_hidden_at_any_depth() -> None:
    spec = CanarySpec.model_validate(
        {
            "write": [{"method": "PUT", "path": "/x", "port": 1, "json": [{"x": {"token": "t"}}]}],
            "read": [{"path": "/x", "port": 1}],
        }
    )
    assert scenario(spec)[0]["json"] == [{"x": {"token": MARKER}}]


def test_an_exec_steps_input_is_never_shown() -> None:
    spec = CanarySpec.model_validate(
        {
            "write": [{"exec": ["agent", "remember", "--id", "{marker}"], "stdin": "pw=abc\n"}],
            "read": [
                {"exec": ["agent", "recall", "{marker}"], "expect_output_contains": "{marker}"}
            ],
        }
    )
    write, read = scenario(spec)
    assert write["request"] == "exec agent remember --id '{marker}'"
    assert write["stdin"].startswith("7 bytes (never shown")
    assert "pw=abc" not in repr(write)
    assert read["expect"] == "exit 0, output contains '{marker}'"


def test_readiness_in_words() -> None:
    spec = ReadinessSpec.model_validate({"http": {"path": "/health", "port": 8080}, "timeout": 30})
    assert readiness(spec).endswith("(within 30 s)")
    assert "/health" in readiness(spec)


def test_the_report_shows_the_settings_and_every_step() -> None:
    settings = container_settings(INSPECT, IMAGE_ENV)
    settings["env"]["NOTES_ADMIN_PASSWORD"] = MARKER  # as the collector hands them over
    steps = scenario(CanarySpec.model_validate(yaml.safe_load(CANARY)))
    doc = results(
        reproduce={
            "container": settings,
            "run_command": run_command(settings),
            "commands": {"start": "docker volume create v\ndocker run ...", "restart": "x"},
            "readiness": "GET /health answers 200 (within 60 s)",
            "canary": steps,
        }
    )
    report = render_markdown(doc)

    section = report[report.index("## Reproducing this audit") : report.index("## Risk")]
    assert "| Command | `/app/notes_app.py --title 'two words'` |" in section
    assert "| Restart policy | on-failure:3 |" in section
    assert "volume `persistaudit-notes-app-1a2b3c4d` at `/data` (rw)" in section
    assert "bind `/srv/config` at `/config` (ro)" in section
    assert "| `NOTES_ADMIN_PASSWORD` | `[REDACTED]` |" in section
    assert "(and 2 variables of the image's own: LANG, PATH)" in section
    assert "-e NOTES_ADMIN_PASSWORD" in section
    assert "Ready when: GET /health answers 200 (within 60 s)." in section
    assert "| 1 | setup (per session) | `POST :8080/login` | form user=admin&password=" in section
    assert "| 3 | write (x 5 records) | `POST :8080/notes` |" in section
    assert "hunter2-long" not in report
    assert step_details(steps[2]).startswith("X-CSRF-Token: {capture.csrf}; Authorization: ")


def test_a_report_without_a_described_container_says_so() -> None:
    doc = results(
        reproduce={
            "container": {},
            "run_command": "",
            "commands": {},
            "readiness": "r",
            "canary": [],
        }
    )
    report = render_markdown(doc)
    assert "The container's settings were not recorded" in report
    assert "as one command" not in report


def test_hostile_settings_cannot_break_the_table() -> None:
    settings = container_settings(
        {**INSPECT, "Config": {**INSPECT["Config"], "Cmd": ["a|b", "`x`\n## Fake heading"]}}
    )
    doc = results(
        reproduce={
            "container": settings,
            "run_command": "",
            "commands": {},
            "readiness": "r",
            "canary": [],
        }
    )
    report = render_markdown(doc)
    line = next(x for x in report.splitlines() if x.startswith("| Command |"))
    assert line.count(" | ") == 1
    assert "\n## Fake heading" not in report

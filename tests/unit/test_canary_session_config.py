"""Session canary config: setup, captures, form bodies and expect_json, validated at load."""

from __future__ import annotations

from pathlib import Path

import pytest

from persistaudit.config import HttpStep, load_config
from persistaudit.exceptions import ConfigError
from tests.helpers import GOOD_CONFIG

SESSION_CANARY = """\
canary:
  records: 2
  setup:
    - {method: POST, path: /login, port: 8080, form: {user: admin, password: "${PW:-pw}"}}
    - {path: /csrf-token, port: 8080, capture: {token: {json: csrf}}}
  write:
    - method: POST
      path: /notes
      port: 8080
      headers: {X-CSRF-Token: "{capture.token}"}
      json: {title: "{marker}"}
      expect_status: 201
      capture: {id: {json: id, secret: false}}
  read:
    - path: /notes/{capture.id}
      port: 8080
      expect_json: {title: "{marker}", id: "{capture.id}"}
"""


def session_config(config_dir: Path, canary: str = SESSION_CANARY) -> Path:
    head, _, rest = GOOD_CONFIG.partition("canary:\n")
    path = config_dir / "session.yaml"
    path.write_text(head + canary + rest[rest.index("expect:") :])
    return path


def test_a_session_canary_loads(config_dir: Path) -> None:
    spec = load_config(session_config(config_dir)).canary
    login, token = spec.setup
    assert login.form == {"user": "admin", "password": "pw"}
    assert token.capture["token"].json_path == "csrf"
    assert token.capture["token"].secret
    write = spec.write[0]
    assert isinstance(write, HttpStep)
    assert not write.capture["id"].secret
    assert not spec.changes_nothing


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (
            "path: /notes/{capture.id}",
            "path: /notes/{capture.ident}",
            r"session.yaml:\d+: canary: read\[0\].path: \{capture.ident\} is not captured by "
            r"an earlier step \(captured before it: id, token\)",
        ),
        (  # a write step cannot use what a later one captures, nor setup what writes do
            'X-CSRF-Token: "{capture.token}"',
            'X-CSRF-Token: "{capture.id}"',
            r"canary: write\[0\].headers: \{capture.id\} is not captured by an earlier step "
            r"\(captured before it: token\)",
        ),
        (
            "path: /csrf-token, port: 8080,",
            'path: "/csrf/{capture.token}", port: 8080,',
            r"canary: setup\[1\].path: \{capture.token\} is not captured by an earlier step "
            r"\(captured before it: none\)",
        ),
        (
            'expect_json: {title: "{marker}"',
            'expect_json: {title: "{capture.title}"',
            r"canary: read\[0\].expect_json: \{capture.title\} is not captured",
        ),
        (
            "path: /csrf-token, port: 8080,",
            'path: "/csrf-token?for={marker}", port: 8080,',
            r"canary: setup\[1\].path: setup runs once per session, not per record",
        ),
        (
            "{token: {json: csrf}}",
            "{token: {json: csrf, regex: x}}",
            r"canary.setup.1.capture.token: give exactly one of json, regex, header or cookie",
        ),
        (
            "{token: {json: csrf}}",
            "{token: {json: 'a..b'}}",
            r"canary.setup.1.capture.token: JSON path 'a..b' is malformed",
        ),
        (
            "{token: {json: csrf}}",
            "{token: {regex: '(x'}}",
            r"canary.setup.1.capture.token: regex is not a valid regex",
        ),
        (
            'form: {user: admin, password: "${PW:-pw}"}',
            "form: {user: admin}, json: {a: 1}",
            r"canary.setup.0: give json or form as the body, not both",
        ),
        (
            'expect_json: {title: "{marker}"',
            'expect_json: {"title[": "{marker}"',
            r"canary.read.0: expect_json: JSON path 'title\[' is malformed",
        ),
        (
            "{token: {json: csrf}}",
            "{token: {cookie: sid, colour: red}}",
            r"canary.setup.1.capture.token.colour: Extra inputs are not permitted",
        ),
    ],
)
def test_session_config_errors_name_the_step_and_field(
    config_dir: Path, old: str, new: str, expected: str
) -> None:
    assert old in SESSION_CANARY
    path = session_config(config_dir, SESSION_CANARY.replace(old, new))
    with pytest.raises(ConfigError, match=expected):
        load_config(path)


def test_setup_needs_http_steps(config_dir: Path) -> None:
    canary = (
        "canary:\n  setup:\n    - {path: /login, port: 8080}\n"
        "  write:\n    - exec: [items, add, x]\n  read:\n    - exec: [items, get, x]\n"
    )
    with pytest.raises(ConfigError, match="setup opens an HTTP session"):
        load_config(session_config(config_dir, canary))


def test_a_canary_whose_writes_only_read_changes_nothing(config_dir: Path) -> None:
    canary = (
        "canary:\n  write:\n    - {path: /health, port: 8080}\n"
        "    - {method: HEAD, path: /, port: 8080}\n"
        "  read:\n    - {path: /health, port: 8080}\n"
    )
    assert load_config(session_config(config_dir, canary)).canary.changes_nothing
    assert not load_config(config_dir / "audit.yaml").canary.changes_nothing

"""Redaction: every form of every secret is kept out, and nothing else is damaged."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import urllib.parse
from pathlib import Path
from typing import Any

import pytest

from persistaudit.config import TargetConfig, load_config
from persistaudit.outputs import write_outputs
from persistaudit.redact import MARKER, MIN_LENGTH, Redactor, is_secret_name
from tests.helpers import GOOD_CONFIG
from tests.unit.test_report import results

API_KEY = "ak-5f2e9c1b7d"
DB_PASSWORD = "pw-Zz9Yy8Xx7"
QUERY_TOKEN = "tok-Q9x8w7v6"
HEADER_TOKEN = "hdr-7Yt6Rr5Ee4"


@pytest.mark.parametrize(
    "name",
    [
        "NOTES_LICENSE_KEY",
        "DB_PASS",
        "API_KEY",
        "AUTH_TOKEN",
        "SESSION_SECRET",
        "DATABASE_DSN",
        "SESSION_COOKIE",
        "PRIVATE_KEY_PEM",
        "GITHUB_AUTH",
        "apiKey",
        "X-Auth-Token",
        "Authorization",
        "db.password",
        "STRIPE_SECRET_KEYS",
    ],
)
def test_secret_names_match_on_whole_words(name: str) -> None:
    assert is_secret_name(name)


@pytest.mark.parametrize(
    "name", ["NOTES_LICENSEE", "MODE", "KEYCLOAK_URL", "PASSENGER_COUNT", "AUTHOR", "MONKEY"]
)
def test_names_that_only_contain_a_secret_word_are_not_secret(name: str) -> None:
    assert not is_secret_name(name)


def test_short_values_are_not_redacted_by_name_and_a_warning_names_the_variable() -> None:
    r = Redactor({"PASSWORD_MIN_LENGTH": "8", "DB_PASS": "x7Q", "API_KEY": API_KEY})
    assert r.text("image sha256:8888 x7Q and " + API_KEY) == f"image sha256:8888 x7Q and {MARKER}"
    assert len(r.warnings) == 2
    assert "environment variable PASSWORD_MIN_LENGTH" in r.warnings[0]
    assert "environment variable DB_PASS" in r.warnings[1]
    assert f"shorter than {MIN_LENGTH} characters" in r.warnings[1]
    assert not any("x7Q" in w for w in r.warnings)
    # The environment listing hides them all the same.
    env = r.env({"PASSWORD_MIN_LENGTH": "8", "DB_PASS": "x7Q", "MODE": "dev"})
    assert env == {"PASSWORD_MIN_LENGTH": MARKER, "DB_PASS": MARKER, "MODE": "dev"}


def results_with_ids() -> dict[str, Any]:
    doc = results()
    doc["target"]["image_id"] = "sha256:" + "8" * 64
    doc["target"]["volume"] = "persistaudit-demo-8a8b8c8d"
    doc["environment"]["config_sha256"] = "8" * 64
    doc["evidence_files"] = {"evidence/startup.log": "8" * 64}
    return doc


def test_keys_ids_and_digests_are_never_redacted() -> None:
    """Even values listed under redact: ("8", "in") leave keys, ids and digests alone."""
    doc = results_with_ids()
    redacted = Redactor({"PASSWORD_MIN_LENGTH": "8", "DB_PASS": "in"}, extra=["8", "in"]).deep(doc)
    assert list(redacted) == list(doc)
    assert "finished_at" in redacted
    for key in ("schema", "verdict", "started_at", "finished_at", "evidence_files"):
        assert redacted[key] == doc[key]
    for key in ("image_id", "volume"):
        assert redacted["target"][key] == doc["target"][key]
    assert redacted["environment"]["config_sha256"] == doc["environment"]["config_sha256"]
    assert [c["id"] for c in redacted["checks"]] == [c["id"] for c in doc["checks"]]
    assert [c["status"] for c in redacted["checks"]] == [c["status"] for c in doc["checks"]]


def test_short_secrets_by_name_corrupt_nothing_written(tmp_path: Path) -> None:
    doc = results_with_ids()
    files = {"startup.log": "listening on 8080, logging in\n"}
    r = Redactor({"PASSWORD_MIN_LENGTH": "8", "DB_PASS": "in"})
    write_outputs(tmp_path, doc, files, r)
    written = json.loads((tmp_path / "results.json").read_text())
    assert written["target"]["image_id"] == "sha256:" + "8" * 64
    assert written["environment"]["config_sha256"] == "8" * 64
    assert written["finished_at"] == doc["finished_at"]
    assert (tmp_path / "evidence" / "startup.log").read_text() == files["startup.log"]
    for name, digest in written["evidence_files"].items():
        assert hashlib.sha256((tmp_path / name).read_bytes()).hexdigest() == digest


def test_url_credentials_in_any_env_value_are_secret_whatever_the_name() -> None:
    r = Redactor({"DATABASE_URL": f"postgres://app:{DB_PASSWORD}@db:5432/app", "MODE": "x"})
    assert r.text(f"connecting as app with {DB_PASSWORD}") == f"connecting as app with {MARKER}"
    assert r.text(f"postgres://app:{DB_PASSWORD}@db/app") == f"postgres://{MARKER}@db/app"


def test_url_credentials_are_redacted_in_any_text() -> None:
    r = Redactor({})
    assert r.text("fetching https://ci:s3cret@git.example/x.git") == (
        f"fetching https://{MARKER}@git.example/x.git"
    )
    assert r.text("token as user: https://ghp_abcdef@github.com/") == (
        f"token as user: https://{MARKER}@github.com/"
    )
    assert r.text("mail ada@example.com, see https://example.com/a@b") == (
        "mail ada@example.com, see https://example.com/a@b"
    )


def test_percent_encoded_url_credentials_are_redacted_decoded_too() -> None:
    r = Redactor({"DSN_URL": "mysql://root:p%40ss%2Fw0rd@db/app"})
    assert r.text("auth failed for password p@ss/w0rd") == f"auth failed for password {MARKER}"


@pytest.mark.parametrize("prefix", [b"", b"u", b"us", b"user:", b"Bearer:x", b"ab:"])
@pytest.mark.parametrize("encode", [base64.b64encode, base64.urlsafe_b64encode])
def test_base64_of_a_secret_is_redacted_at_every_alignment(prefix: bytes, encode: Any) -> None:
    secret = "k?>-" + API_KEY  # "?>" makes the two alphabets differ
    r = Redactor({"API_KEY": secret})
    encoded = encode(prefix + secret.encode() + b"trailing").decode()
    # The characters whose 6 bits all come from the secret's bytes.
    start, end = len(prefix) * 8, (len(prefix) + len(secret)) * 8
    own = encoded[-(-start // 6) : end // 6]
    assert own in encoded
    out = r.text(f"Authorization: Basic {encoded}")
    assert MARKER in out
    assert own not in out


def test_a_basic_auth_header_in_a_log_keeps_the_key_out() -> None:
    r = Redactor({"API_KEY": API_KEY})
    header = base64.b64encode(f"service:{API_KEY}".encode()).decode()
    out = r.text(f"GET /x Authorization: Basic {header}")
    # "service:" is 8 bytes: the key's own characters start at the 11th.
    assert out == f"GET /x Authorization: Basic {header[:11]}{MARKER}"


def test_percent_encoded_secrets_are_redacted() -> None:
    secret = "p@ss word/+=&"
    r = Redactor({"DB_PASSWORD": secret})
    for form in (urllib.parse.quote(secret, safe=""), urllib.parse.quote_plus(secret)):
        assert r.text(f"POST /login?next=1&x={form}") == f"POST /login?next=1&x={MARKER}"
    lower = re.sub("%[0-9A-F]{2}", lambda m: m.group().lower(), urllib.parse.quote(secret, safe=""))
    assert r.text(lower) == MARKER


def test_secret_query_parameters_are_redacted_in_any_url() -> None:
    r = Redactor({})
    text = "GET /notes?title=pa-1&access_token=abc&apiKey=xyz&page=2 answered 404"
    assert r.text(text) == (
        f"GET /notes?title=pa-1&access_token={MARKER}&apiKey={MARKER}&page=2 answered 404"
    )


CANARY_CONFIG = (
    GOOD_CONFIG.replace(
        "  API_TOKEN: hunter2\n",
        f"  API_KEY: {API_KEY}\n  DATABASE_URL: postgres://app:{DB_PASSWORD}@db/app\n",
    )
    .replace(
        'path: "/items?name={marker}"',
        f'path: "/items?name={{marker}}&access_token={QUERY_TOKEN}"',
    )
    .replace(
        'json: {name: "{marker}"}, expect_status: 201}',
        'json: {name: "{marker}"}, expect_status: 201, '
        f'headers: {{Authorization: "Bearer {HEADER_TOKEN}", X-Request-Id: "{{marker}}"}}}}',
    )
)


def every_form(secret: str) -> list[str]:
    raw = secret.encode()
    return [
        secret,
        base64.b64encode(raw).decode(),
        urllib.parse.quote(secret, safe=""),
        *(base64.b64encode(b"\0" * k + raw).decode()[3:-3] for k in range(3)),
    ]


def test_each_canary_form_is_redacted_through_the_document_writer(
    config_dir: Path, tmp_path: Path
) -> None:
    (config_dir / "audit.yaml").write_text(CANARY_CONFIG)
    config = load_config(config_dir / "audit.yaml")
    assert config.canary.write[0].headers["Authorization"] == f"Bearer {HEADER_TOKEN}"
    redactor = Redactor.for_target(config)
    basic = base64.b64encode(f"svc:{API_KEY}".encode()).decode()
    doc = results()
    doc["target"]["env"] = redactor.env(config.env)
    doc["checks"][0]["summary"] = (
        f"GET /items?name=pa-1&access_token={QUERY_TOKEN} answered 404"  # a query string
    )
    doc["checks"][0]["evidence"] = [
        {
            "title": "Service log",
            "content": f"auth header: Bearer {HEADER_TOKEN}\n"  # a header value
            f"upstream Authorization: Basic {basic}\n"  # base64 in a log line
            f"db postgres://app:{DB_PASSWORD}@db/app\n",  # URL credentials
            "kind": "log",
            "columns": [],
            "rows": [],
            "file": "",
        }
    ]
    files = {"startup.log": f"token {QUERY_TOKEN} header {HEADER_TOKEN} basic {basic}\n"}
    write_outputs(tmp_path / "out", doc, files, redactor)
    written = {p.name: p.read_text() for p in (tmp_path / "out").rglob("*") if p.is_file()}
    assert set(written) == {"results.json", "report.md", "junit.xml", "startup.log"}
    for name, text in written.items():
        for secret in (API_KEY, DB_PASSWORD, QUERY_TOKEN, HEADER_TOKEN):
            for form in every_form(secret):
                assert form not in text, f"{secret} leaked into {name} as {form}"
        assert basic not in text
    report = written["report.md"]
    assert f"access_token={MARKER}" in report
    assert f"Bearer {MARKER}" in report
    assert f"postgres://{MARKER}@db/app" in report


def test_canary_placeholders_are_not_secrets() -> None:
    r = Redactor({}, steps=[("/items?token={marker}", {"X-Session": "{run}-{i}"})])
    assert r.warnings == []
    assert r.text("pa-1-000001 run ab12") == "pa-1-000001 run ab12"


def test_canary_json_members_with_secret_names_are_secrets() -> None:
    config = TargetConfig.model_validate(
        {
            "name": "demo",
            "image": "demo:1",
            "database": {"path": "/data/app.db"},
            "volume": {"mount": "/data"},
            "readiness": {"http": {"path": "/", "port": 80}},
            "canary": {
                "setup": [
                    {
                        "method": "POST",
                        "path": "/login",
                        "port": 80,
                        "json": {"user": "admin", "credentials": {"password": "pw-login-42"}},
                        "capture": {"csrf": {"json": "csrf"}},
                    }
                ],
                "write": [
                    {
                        "method": "POST",
                        "path": "/x",
                        "port": 80,
                        "headers": {"X-CSRF-Token": "{capture.csrf}"},
                        "json": {"name": "{marker}", "api_key": "key-{run}-abcdef"},
                    }
                ],
                "read": [{"path": "/x", "port": 80}],
            },
            "expect": {"manifest": "m.yaml"},
        }
    )
    r = Redactor.for_target(config)
    assert r.text("login with pw-login-42") == f"login with {MARKER}"
    assert r.text("key ab12-abcdef") == f"key ab12{MARKER}"  # the literal part around {run}
    assert r.text("admin wrote {capture.csrf}") == "admin wrote {capture.csrf}"

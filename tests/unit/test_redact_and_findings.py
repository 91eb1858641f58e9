from __future__ import annotations

from persistaudit.findings import CheckResult, verdict
from persistaudit.redact import MARKER, Redactor


def test_secret_names_and_listed_values_are_redacted_everywhere() -> None:
    r = Redactor(
        {
            "NOTES_LICENSE_KEY": "lic-123",
            "DB_PASSWORD": "pw-secret",
            "API_TOKEN": "tok-abc",
            "MODE": "dev",
        },
        extra=["customer-42"],
    )
    assert r.env({"API_TOKEN": "tok-abc", "MODE": "dev"}) == {"API_TOKEN": MARKER, "MODE": "dev"}
    doc = {
        "logs": ["using key lic-123", "token=tok-abc for customer-42"],
        "n": 3,
        "pw": "pw-secret",
    }
    assert r.deep(doc) == {
        "logs": [f"using key {MARKER}", f"token={MARKER} for {MARKER}"],
        "n": 3,
        "pw": MARKER,
    }


def test_longer_secrets_are_replaced_whole() -> None:
    r = Redactor({"A_KEY": "abcdef", "B_KEY": "abcdefghij"})
    assert r.text("abcdefghij abcdef") == f"{MARKER} {MARKER}"


def check(status: str) -> CheckResult:
    return CheckResult("s.c", "s", status, "")  # type: ignore[arg-type]


def test_verdict_precedence() -> None:
    assert verdict([check("passed"), check("passed")]) == "PASS"
    assert verdict([check("passed"), check("blocked")]) == "BLOCKED"
    assert verdict([check("blocked"), check("failed")]) == "FAIL"
    assert verdict([check("passed"), check("skipped")]) == "PASS"
    assert verdict([]) == "BLOCKED"  # nothing was checked: nothing is validated

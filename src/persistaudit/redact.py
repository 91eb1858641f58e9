"""Keep secrets out of every output: results, reports, progress lines and log excerpts."""

from __future__ import annotations

import re
from typing import Any

MARKER = "[REDACTED]"
SECRET_NAME = re.compile(r"KEY|SECRET|TOKEN|PASSWORD|PASS|CREDENTIAL|LICEN[CS]E", re.IGNORECASE)


def is_secret_name(name: str) -> bool:
    return bool(SECRET_NAME.search(name))


class Redactor:
    """Replaces the values of secret-looking environment variables and listed values."""

    def __init__(self, env: dict[str, str], extra: list[str] | None = None) -> None:
        values = {v for k, v in env.items() if is_secret_name(k) and v}
        values |= {v for v in extra or [] if v}
        # Longest first, so a secret containing another is replaced whole.
        self._values = sorted(values, key=len, reverse=True)

    def text(self, value: str) -> str:
        for secret in self._values:
            value = value.replace(secret, MARKER)
        return value

    def env(self, env: dict[str, str]) -> dict[str, str]:
        return {k: MARKER if is_secret_name(k) else self.text(v) for k, v in env.items()}

    def deep(self, value: Any) -> Any:
        """Redact every string in a JSON-like structure (keys included)."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {self.deep(k): self.deep(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.deep(v) for v in value]
        return value

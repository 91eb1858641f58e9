"""Keep secrets out of every output: results, reports, progress lines and log excerpts.

Secret are: the values of environment variables whose names hold a secret word (names are
split into words on `_ - .` and case changes, so NOTES_LICENSEE holds none), credentials
in any URL in any environment value, the values of canary steps' query parameters and
headers whose names hold one, and every value listed under `redact:`. Each is replaced
as written, base64-encoded (alone, and inside a longer encoded string at each of the three
byte alignments) and percent-encoded. In any text, URL credentials and the values of
secret-looking query parameters are replaced whatever they are.

Nothing else is damaged: only values are redacted, never keys or the fields that hold
digests and ids, and a value found by name that is too short to be a secret ("8", "in")
is not replaced in text, where it would corrupt every id and timestamp; a warning says so.
"""

from __future__ import annotations

import base64
import re
import urllib.parse
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from persistaudit.config import TargetConfig

MARKER = "[REDACTED]"
MIN_LENGTH = 6  # shorter values found by name are not replaced in text (a warning says so)
SECRET_WORDS = frozenset(
    {
        "key",
        "apikey",
        "secret",
        "token",
        "password",
        "passwd",
        "pass",
        "passphrase",
        "credential",
        "creds",
        "license",
        "licence",
        "dsn",
        "auth",
        "authorization",
        "cookie",
        "session",
        "sessionid",
        "private",
    }
)
# Fields of a results document that hold ids, digests, enumerations and timestamps.
PROTECTED_FIELDS = frozenset(
    {
        "schema",
        "verdict",
        "id",
        "suite",
        "status",
        "kind",
        "check",
        "file",
        "image_id",
        "repo_digests",
        "volume",
        "config_sha256",
        "evidence_files",
        "started_at",
        "finished_at",
    }
)

_WORD = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[0-9]+")
_URL_USERINFO = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://)([^\s/?#@\"'<>]+)@")
_QUERY_PARAM = re.compile(r"(?<=[?&;])([A-Za-z0-9_.\-\[\]]+)=([^&#\s\"'<>]*)")
_PLACEHOLDER = re.compile(r"\{(?:i|marker|run|capture\.\w+)\}")


def name_words(name: str) -> list[str]:
    """API_KEY -> api, key; apiKey -> api, key; X-Auth-Token -> x, auth, token."""
    return [w.lower() for w in _WORD.findall(name)]


def is_secret_name(name: str) -> bool:
    """A whole word of the name is a secret word (or its plural)."""
    return any(w in SECRET_WORDS or w.removesuffix("s") in SECRET_WORDS for w in name_words(name))


def url_credentials(text: str) -> list[str]:
    """The secret parts of every scheme://user:password@ in text: the password (as written
    and percent-decoded), or the user when there is no password (a token used as a user)."""
    out = []
    for match in _URL_USERINFO.finditer(text):
        user, colon, password = match.group(2).partition(":")
        secret = password if colon else user
        out += [secret, urllib.parse.unquote(secret)]
    return [s for s in dict.fromkeys(out) if s and s != MARKER]


def encoded_forms(secret: str) -> set[str]:
    """The value, its percent-encodings and its base64 (standard and URL-safe alphabets).

    Inside a longer base64 string (a Basic auth header encodes user:secret) the value's
    encoding depends on its byte offset mod 3; for each offset, the characters that only
    its own bytes determine are the part that must not appear.
    """
    raw = secret.encode()
    forms = {secret, urllib.parse.quote(secret, safe=""), urllib.parse.quote_plus(secret)}
    forms |= {re.sub(r"%[0-9A-F]{2}", lambda m: m.group().lower(), f) for f in set(forms)}
    for encode in (base64.b64encode, base64.urlsafe_b64encode):
        forms.add(encode(raw).decode())
        for offset in range(3):
            text = encode(b"\0" * offset + raw).decode().rstrip("=")
            end = len(text) - (1 if (offset + len(raw)) % 3 else 0)
            forms.add(text[(0, 2, 3)[offset] : end])
    return {f for f in forms if f}


def json_members(value: Any, name: str = "") -> list[tuple[str, str]]:
    """(member name, string) for every string in a JSON value; a string inside a member
    (at any depth) is paired with the nearest secret-looking name above it, if any."""
    if isinstance(value, dict):
        return [
            pair
            for key, v in value.items()
            for pair in json_members(v, name if is_secret_name(name) else str(key))
        ]
    if isinstance(value, list):
        return [pair for v in value for pair in json_members(v, name)]
    return [(name, value)] if isinstance(value, str) else []


def _literal_parts(value: str) -> list[str]:
    """A canary value, or when it has {marker}-style placeholders, its long literal parts."""
    parts = _PLACEHOLDER.split(value)
    return parts if len(parts) == 1 else [p for p in parts if len(p) >= MIN_LENGTH]


class Redactor:
    """Replaces secret values (in all their forms) in text and in results documents."""

    def __init__(
        self,
        env: dict[str, str],
        extra: list[str] | None = None,
        *,
        steps: Iterable[tuple[str, dict[str, str] | list[tuple[str, str]]]] = (),
    ) -> None:
        self.warnings: list[str] = []
        found: dict[str, str] = {}  # value -> where it was found, for the warning
        for name, value in env.items():
            if is_secret_name(name) and value:
                found.setdefault(value, f"environment variable {name}")
            for secret in url_credentials(value):
                found.setdefault(secret, f"the URL credentials in environment variable {name}")
        for path, headers in steps:
            query = urllib.parse.urlsplit(path).query
            for name, value in urllib.parse.parse_qsl(query, keep_blank_values=True):
                if is_secret_name(name):
                    for part in _literal_parts(value):
                        found.setdefault(part, f"canary query parameter {name}")
            for name, value in headers.items() if isinstance(headers, dict) else headers:
                if is_secret_name(name):
                    scheme, space, credentials = value.strip().partition(" ")
                    if space and re.fullmatch(r"[A-Za-z-]+", scheme):  # Bearer abc, Basic ...
                        value = credentials.strip()
                    for part in _literal_parts(value):
                        found.setdefault(part, f"canary header {name}")
        forms: set[str] = {v for v in extra or [] if v}
        short: dict[str, None] = {}
        for value, where in found.items():
            if len(value) >= MIN_LENGTH:
                forms |= encoded_forms(value)
            elif value.strip():
                short[where] = None
        for extra_value in extra or []:
            if len(extra_value) >= MIN_LENGTH:
                forms |= encoded_forms(extra_value)
        for where in short:
            self.warnings.append(
                f"the value of {where} is shorter than {MIN_LENGTH} characters: it is not "
                "redacted from logs and messages (it would corrupt ids and digests), only "
                "from the environment listing"
            )
        # One pattern, longest first: a secret containing another is replaced whole.
        self._pattern = (
            re.compile("|".join(re.escape(f) for f in sorted(forms, key=len, reverse=True)))
            if forms
            else None
        )

    @classmethod
    def for_target(cls, config: TargetConfig) -> Redactor:
        """The secrets of a target config: its environment, redact: list and canary steps."""
        # Imported here: at the top, config is imported for type checking only.
        from persistaudit.config import HttpStep

        # A form field or a JSON body's member is named like a header (password=...): its
        # value is found the same way.
        steps: list[tuple[str, dict[str, str] | list[tuple[str, str]]]] = [
            (s.path, [*(s.form or {}).items(), *s.headers.items(), *json_members(s.json_body)])
            for s in (*config.canary.setup, *config.canary.write, *config.canary.read)
            if isinstance(s, HttpStep)  # an exec step's stdin is never shown
        ]
        return cls(config.env, config.redact, steps=steps)

    def text(self, value: str) -> str:
        if self._pattern is not None:
            value = self._pattern.sub(MARKER, value)
        value = _URL_USERINFO.sub(
            lambda m: m.group() if m.group(2) == MARKER else f"{m.group(1)}{MARKER}@", value
        )
        return _QUERY_PARAM.sub(
            lambda m: (
                f"{m.group(1)}={MARKER}" if m.group(2) and is_secret_name(m.group(1)) else m.group()
            ),
            value,
        )

    def env(self, env: dict[str, str]) -> dict[str, str]:
        """Secret-named values are hidden whatever their length; the rest are redacted."""
        return {k: MARKER if is_secret_name(k) else self.text(v) for k, v in env.items()}

    def deep(self, value: Any) -> Any:
        """Redact every string value in a JSON-like structure; keys and ids are kept as they are."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {k: v if k in PROTECTED_FIELDS else self.deep(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.deep(v) for v in value]
        return value

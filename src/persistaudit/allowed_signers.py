"""OpenSSH allowed-signers files (ssh-keygen(1), ALLOWED SIGNERS): who may sign what.

One line per signer: `PRINCIPALS [OPTIONS] KEYTYPE BASE64 [COMMENT]`, where PRINCIPALS is a
comma-separated pattern list (`*`, `?`, `!` to negate) and OPTIONS are `namespaces="..."`,
`valid-after=...`, `valid-before=...` and `cert-authority`. A signature is accepted as
`ssh-keygen -Y verify` accepts it: a line with the same plain key, the namespace allowed,
the current time inside the validity window, and (when an identity is asked) the identity
among its principals.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from persistaudit.exceptions import AllowedSignersError

MAX_BYTES = 1 << 20


@dataclass(frozen=True)
class Signer:
    """One line of an allowed-signers file."""

    line: int
    principals: str  # the pattern list as written
    key_type: str
    key_blob: bytes
    namespaces: str | None = None  # pattern list; None: any namespace
    valid_after: datetime | None = None
    valid_before: datetime | None = None
    cert_authority: bool = False


def match_pattern(text: str, pattern: str) -> bool:
    """OpenSSH's match_pattern: `*` any run of characters, `?` one, case-sensitive."""
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, text, re.DOTALL) is not None


def match_list(text: str, patterns: str) -> bool:
    """OpenSSH's match_pattern_list: a negated pattern that matches wins over the rest."""
    found = False
    for pattern in patterns.split(","):
        negated = pattern.startswith("!")
        if match_pattern(text, pattern[1:] if negated else pattern):
            if negated:
                return False
            found = True
    return found


def _token(text: str, at: int) -> tuple[str, int]:
    """The next whitespace-delimited token from at, double quotes keeping spaces inside."""
    start, quoted = at, False
    while at < len(text) and (quoted or not text[at].isspace()):
        if text[at] == '"':
            quoted = not quoted
        at += 1
    if quoted:
        raise ValueError("an unterminated quote")
    return text[start:at], at


def _time(value: str) -> datetime:
    """YYYYMMDD[HHMM[SS]], with a trailing Z for UTC (else the local time zone)."""
    utc = value.endswith(("Z", "z"))
    digits = value[:-1] if utc else value
    formats = {8: "%Y%m%d", 12: "%Y%m%d%H%M", 14: "%Y%m%d%H%M%S"}
    if len(digits) not in formats or not digits.isdigit():
        raise ValueError(f"a time {value!r} not in the form YYYYMMDD[HHMM[SS]][Z]")
    when = datetime.strptime(digits, formats[len(digits)])
    return when.replace(tzinfo=timezone.utc) if utc else when.astimezone()


def _options(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for part in re.findall(r'(?:[^,"]|"[^"]*")+', text):
        name, _, value = part.partition("=")
        name = name.lower()
        if name not in ("namespaces", "valid-after", "valid-before", "cert-authority"):
            raise ValueError(f"an unknown option {name!r}")
        if name in out:
            raise ValueError(f"the option {name!r} twice")
        out[name] = value[1:-1] if value.startswith('"') and value.endswith('"') else value
    return out


def parse_line(text: str, number: int) -> Signer | None:
    """One line; None for a blank line or a comment. ValueError says what is wrong."""
    text = text.strip()
    if not text or text.startswith("#"):
        return None
    principals, at = _token(text, 0)
    if principals.startswith('"'):
        if not principals.endswith('"') or len(principals) < 2:
            raise ValueError("quoted principals must be one quoted string")
        principals = principals[1:-1]
    words: list[str] = []
    while len(words) < 3:
        while at < len(text) and text[at].isspace():
            at += 1
        if at == len(text):
            break
        word, at = _token(text, at)
        words.append(word)
    options: dict[str, str] = {}
    if len(words) == 3 and not _is_key_type(words[0]):
        options = _options(words.pop(0))
    if len(words) < 2 or not _is_key_type(words[0]):
        raise ValueError("no key (KEYTYPE BASE64) after the principals")
    key_type, encoded = words[0], words[1]
    try:
        blob = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("its key is not valid base64") from None
    return Signer(
        line=number,
        principals=principals,
        key_type=key_type,
        key_blob=blob,
        namespaces=options.get("namespaces"),
        valid_after=_time(options["valid-after"]) if "valid-after" in options else None,
        valid_before=_time(options["valid-before"]) if "valid-before" in options else None,
        cert_authority="cert-authority" in options,
    )


def _is_key_type(token: str) -> bool:
    return token.startswith(("ssh-", "ecdsa-", "sk-")) or token.endswith("@openssh.com")


def load(path: Path) -> list[Signer]:
    """Every signer of the file; a malformed line is one error naming the file and line."""
    try:
        with path.open("rb") as fh:
            data = fh.read(MAX_BYTES + 1)
    except OSError as exc:
        raise AllowedSignersError(f"{path}: cannot read: {exc.strerror}") from None
    if len(data) > MAX_BYTES:
        raise AllowedSignersError(f"{path}: larger than 1 MiB: not an allowed-signers file")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise AllowedSignersError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    signers = []
    for number, line in enumerate(text.splitlines(), 1):
        try:
            signer = parse_line(line, number)
        except ValueError as exc:
            raise AllowedSignersError(f"{path}:{number}: {exc}") from None
        if signer is not None:
            signers.append(signer)
    return signers


def principals_for(
    signers: list[Signer],
    key_blob: bytes,
    namespace: str,
    identity: str | None,
    now: datetime | None = None,
) -> tuple[list[str], str]:
    """The principals allowed to have made a signature with key_blob for namespace.

    With an identity, the list is [identity] or empty. The text says why nothing matched.
    """
    now = now or datetime.now(timezone.utc)
    lines = [s for s in signers if not s.cert_authority and s.key_blob == key_blob]
    if not lines:
        return [], "the key is not listed"
    reasons, found = [], []
    for signer in lines:
        if signer.namespaces is not None and not match_list(namespace, signer.namespaces):
            reasons.append(f"line {signer.line} allows the key only for {signer.namespaces}")
        elif signer.valid_after is not None and now < signer.valid_after:
            reasons.append(f"line {signer.line} allows the key only after {signer.valid_after}")
        elif signer.valid_before is not None and now > signer.valid_before:
            reasons.append(f"line {signer.line} allowed the key only before {signer.valid_before}")
        elif identity is not None and not match_list(identity, signer.principals):
            reasons.append(f"line {signer.line} lists the key for {signer.principals}")
        else:
            found.append(identity if identity is not None else signer.principals)
    return sorted(set(found)), "; ".join(reasons)

"""Sign-off: an Ed25519 signature over a report folder, so no file changes unnoticed.

signature.json lists the sha256 of every file in the folder (report.md, results.json,
junit.xml, evidence/*) with who signed, when and with which key, and an Ed25519 signature
over that list. Keys are OpenSSH files, so auditors can sign with the key they already use.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from persistaudit.exceptions import PersistauditError

SIGNATURE_FILE = "signature.json"
SIGNATURE_SCHEMA = "persistaudit/signature/v1"
PASSPHRASE_ENV = "PERSISTAUDIT_KEY_PASSPHRASE"


class SigningError(PersistauditError):
    """A key cannot be read or used, or a folder cannot be signed."""


def keygen(path: Path, comment: str) -> tuple[Path, Path]:
    """Write a new Ed25519 key pair: PATH (private, mode 600) and PATH.pub (OpenSSH)."""
    public_path = Path(f"{path}.pub")
    for existing in (path, public_path):
        if existing.exists():
            raise SigningError(f"{existing} exists; persistaudit never overwrites a key")
    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption(),
    )
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(private)
    public_path.write_text(f"{openssh_public(key.public_key())} {comment}\n", encoding="utf-8")
    return path, public_path


def openssh_public(key: Ed25519PublicKey) -> str:
    raw = key.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    return raw.decode()


def fingerprint(key: Ed25519PublicKey) -> str:
    """SHA256:... as ssh-keygen -lf prints it."""
    blob = base64.b64decode(openssh_public(key).split()[1])
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


def load_private_key(path: Path) -> Ed25519PrivateKey:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise SigningError(f"{path}: cannot read the key: {exc.strerror}") from None
    passphrase = os.environ.get(PASSPHRASE_ENV, "").encode() or None
    try:
        if b"OPENSSH PRIVATE KEY" in data:
            key: Any = serialization.load_ssh_private_key(data, passphrase)
        else:
            key = serialization.load_pem_private_key(data, passphrase)
    except (ValueError, TypeError) as exc:
        hint = (
            f" (set {PASSPHRASE_ENV} for a passphrase-protected key)" if passphrase is None else ""
        )
        raise SigningError(f"{path}: not a usable private key: {exc}{hint}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise SigningError(f"{path}: a {type(key).__name__} key; only Ed25519 keys sign reports")
    return key


def load_public_key(path: Path) -> Ed25519PublicKey:
    """An OpenSSH public key (or the public half of a private key file)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise SigningError(f"{path}: cannot read the key: {exc.strerror}") from None
    if b"PRIVATE KEY" in data:
        return load_private_key(path).public_key()
    try:
        key = serialization.load_ssh_public_key(data.strip().split(b"\n")[0])
    except (ValueError, TypeError) as exc:
        raise SigningError(f"{path}: not an OpenSSH public key: {exc}") from None
    if not isinstance(key, Ed25519PublicKey):
        raise SigningError(f"{path}: not an Ed25519 public key")
    return key


def digests(folder: Path) -> dict[str, str]:
    """sha256 of every file below folder except the signature, by POSIX relative path."""
    out = {}
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder).as_posix()
        if path.is_file() and rel != SIGNATURE_FILE:
            out[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def _canonical(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def signoff_block(key: Ed25519PublicKey, auditor: str, role: str, when: datetime) -> dict[str, str]:
    """What the report's sign-off block shows."""
    return {
        "auditor": auditor,
        "role": role,
        "signed_at": when.isoformat(timespec="seconds"),
        "fingerprint": fingerprint(key),
    }


def sign(folder: Path, key: Ed25519PrivateKey, signoff: dict[str, str]) -> Path:
    """Write signature.json over every file now in folder."""
    payload = {
        "schema": SIGNATURE_SCHEMA,
        **signoff,
        "public_key": openssh_public(key.public_key()),
        "files": digests(folder),
    }
    signature = base64.b64encode(key.sign(_canonical(payload))).decode()
    target = folder / SIGNATURE_FILE
    target.write_text(json.dumps({**payload, "signature": signature}, indent=2) + "\n")
    return target


@dataclass
class Verification:
    signer: dict[str, str] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def verify(folder: Path, trusted: Ed25519PublicKey | None = None) -> Verification:
    """Check the signature and every file's digest; each problem names its file."""
    path = folder / SIGNATURE_FILE
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        signature = base64.b64decode(doc.pop("signature"))
        public = serialization.load_ssh_public_key(doc["public_key"].encode())
        files: dict[str, str] = doc["files"]
    except FileNotFoundError:
        raise SigningError(f"{folder}: no {SIGNATURE_FILE}: the report is not signed") from None
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise SigningError(f"{path}: unreadable signature file: {exc}") from None
    if not isinstance(public, Ed25519PublicKey):
        raise SigningError(f"{path}: the signing key is not Ed25519")
    result = Verification(
        signer={k: str(doc.get(k, "")) for k in ("auditor", "role", "signed_at", "fingerprint")}
    )
    try:
        public.verify(signature, _canonical(doc))
    except InvalidSignature:
        result.problems.append(f"{SIGNATURE_FILE}: the signature does not match its contents")
    if trusted is not None and openssh_public(trusted) != openssh_public(public):
        result.problems.append(
            f"{SIGNATURE_FILE}: signed by {fingerprint(public)}, not by the trusted key "
            f"{fingerprint(trusted)}"
        )
    now = digests(folder)
    for name, digest in sorted(files.items()):
        if name not in now:
            result.problems.append(f"{name}: missing (it was signed)")
        elif now[name] != digest:
            result.problems.append(f"{name}: changed since it was signed")
    for name in sorted(set(now) - set(files)):
        result.problems.append(f"{name}: added after signing (not covered by the signature)")
    return result


def now_utc() -> datetime:
    return datetime.now(timezone.utc)

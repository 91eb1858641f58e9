"""OpenSSH's signature format (PROTOCOL.sshsig), for Ed25519 keys: what `ssh-keygen -Y sign`
writes and `ssh-keygen -Y verify` checks, so an auditor can check a report with stock tools.

Ed25519 signatures are deterministic: the same key, namespace and message give the same
bytes as ssh-keygen's. Parsing is strict: one armored blob, nothing after its last field.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

MAGIC = b"SSHSIG"
VERSION = 1
KEY_TYPE = "ssh-ed25519"
HASH = "sha512"  # ssh-keygen's default
HASHES = {"sha256": hashlib.sha256, "sha512": hashlib.sha512}
BEGIN = "-----BEGIN SSH SIGNATURE-----"
END = "-----END SSH SIGNATURE-----"
LINE = 70  # ssh-keygen wraps the armored base64 at 70 characters


class SshsigFormatError(ValueError):
    """Bytes that are not one SSHSIG signature; the message says which part is wrong."""


def _string(data: bytes) -> bytes:
    return len(data).to_bytes(4, "big") + data


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data, self.at = data, 0

    def take(self, n: int, what: str) -> bytes:
        if self.at + n > len(self.data):
            raise SshsigFormatError(f"cut short in its {what}")
        out = self.data[self.at : self.at + n]
        self.at += n
        return out

    def string(self, what: str) -> bytes:
        return self.take(int.from_bytes(self.take(4, what), "big"), what)

    def end(self, what: str) -> None:
        if self.at != len(self.data):
            raise SshsigFormatError(f"{len(self.data) - self.at} stray bytes after its {what}")


def public_blob(key: Ed25519PublicKey) -> bytes:
    """The key in SSH wire format (what an OpenSSH public key line holds in base64)."""
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return _string(KEY_TYPE.encode()) + _string(raw)


def key_from_blob(blob: bytes) -> Ed25519PublicKey:
    reader = _Reader(blob)
    kind = reader.string("key type").decode("ascii", "replace")
    if kind != KEY_TYPE:
        raise SshsigFormatError(f"a {kind!r} key; only {KEY_TYPE} keys sign reports")
    raw = reader.string("public key")
    reader.end("public key")
    if len(raw) != 32:
        raise SshsigFormatError(f"an Ed25519 key of {len(raw)} bytes, not 32")
    return Ed25519PublicKey.from_public_bytes(raw)


def _signed_data(namespace: str, reserved: bytes, hash_name: str, message: bytes) -> bytes:
    digest = HASHES[hash_name](message).digest()
    return (
        MAGIC
        + _string(namespace.encode())
        + _string(reserved)
        + _string(hash_name.encode())
        + _string(digest)
    )


def sign(key: Ed25519PrivateKey, message: bytes, namespace: str) -> str:
    """The armored signature, byte for byte as `ssh-keygen -Y sign -n NAMESPACE` writes it."""
    raw = key.sign(_signed_data(namespace, b"", HASH, message))
    blob = (
        MAGIC
        + VERSION.to_bytes(4, "big")
        + _string(public_blob(key.public_key()))
        + _string(namespace.encode())
        + _string(b"")
        + _string(HASH.encode())
        + _string(_string(KEY_TYPE.encode()) + _string(raw))
    )
    text = base64.b64encode(blob).decode("ascii")
    lines = [text[i : i + LINE] for i in range(0, len(text), LINE)]
    return "\n".join([BEGIN, *lines, END]) + "\n"


@dataclass(frozen=True)
class Signature:
    """One parsed SSHSIG signature: who made it, for which namespace, and its bytes."""

    public_key: Ed25519PublicKey
    namespace: str
    reserved: bytes
    hash_name: str
    raw: bytes  # the 64-byte Ed25519 signature

    def verifies(self, message: bytes) -> bool:
        try:
            self.public_key.verify(
                self.raw, _signed_data(self.namespace, self.reserved, self.hash_name, message)
            )
        except InvalidSignature:
            return False
        return True


def parse(text: str) -> Signature:
    """An armored SSHSIG signature; SshsigFormatError says what is wrong with it."""
    lines = text.strip("\n").split("\n")
    if len(lines) < 3 or lines[0] != BEGIN or lines[-1] != END:
        raise SshsigFormatError(f"not an armored SSH signature ({BEGIN} ... {END})")
    try:
        blob = base64.b64decode("".join(lines[1:-1]), validate=True)
    except (binascii.Error, ValueError):
        raise SshsigFormatError("its armor is not valid base64") from None
    reader = _Reader(blob)
    if reader.take(len(MAGIC), "preamble") != MAGIC:
        raise SshsigFormatError("no SSHSIG preamble")
    version = int.from_bytes(reader.take(4, "version"), "big")
    if version != VERSION:
        raise SshsigFormatError(f"version {version}; only version {VERSION} is known")
    key = key_from_blob(reader.string("public key"))
    namespace = reader.string("namespace").decode("utf-8", "replace")
    reserved = reader.string("reserved field")
    hash_name = reader.string("hash algorithm").decode("ascii", "replace")
    if hash_name not in HASHES:
        raise SshsigFormatError(f"hash algorithm {hash_name!r}; only sha256 and sha512 are known")
    inner = _Reader(reader.string("signature"))
    reader.end("signature")
    kind = inner.string("signature type").decode("ascii", "replace")
    if kind != KEY_TYPE:
        raise SshsigFormatError(f"a {kind!r} signature; only {KEY_TYPE} signatures are known")
    raw = inner.string("signature")
    inner.end("signature")
    if len(raw) != 64:
        raise SshsigFormatError(f"an Ed25519 signature of {len(raw)} bytes, not 64")
    return Signature(key, namespace, reserved, hash_name, raw)

"""Sign-off: Ed25519 signatures over a report folder, so no file changes unnoticed.

Two signatures by the same key, each over every file:
- signature.json lists the sha256 of every file in the folder (report.md, results.json,
  junit.xml, evidence/*) with who signed, when and with which key, and an Ed25519 signature
  over that list: what `persistaudit verify` has always checked.
- SHA256SUMS (the same digests, and signature.json's, in `sha256sum` form) and its OpenSSH
  signature SHA256SUMS.sig (namespace "persistaudit", as `ssh-keygen -Y sign` makes it), so
  that an auditor can check the folder with stock tools and an allowed-signers file.
Keys are OpenSSH files, so auditors can sign with the key they already use.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import stat
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath
from typing import Any

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from persistaudit import allowed_signers, checksums, sshsig
from persistaudit.documents import SIGNATURE_SCHEMA_FILE, read_json, validate
from persistaudit.exceptions import SigningError, clip_value

__all__ = ["SigningError", "keygen", "sign", "verify"]

SIGNATURE_FILE = "signature.json"
SUMS_FILE = "SHA256SUMS"
SUMS_SIGNATURE = "SHA256SUMS.sig"
NAMESPACE = "persistaudit"  # ssh-keygen -n: what the signature is for
# The files that sign, never signed by signature.json (SHA256SUMS lists signature.json).
SIGNING_FILES = frozenset({SIGNATURE_FILE, SUMS_FILE, SUMS_SIGNATURE})
MAX_SUMS_BYTES = 16 * 1024 * 1024
MAX_SSHSIG_BYTES = 64 * 1024
SIGNATURE_SCHEMA = "persistaudit/signature/v1"
PASSPHRASE_ENV = "PERSISTAUDIT_KEY_PASSPHRASE"
KEY_TYPE = "ssh-ed25519"
SIGNATURE_BYTES = 64


def keygen(path: Path, comment: str) -> tuple[Path, Path]:
    """Write a new Ed25519 key pair: PATH (private, mode 600) and PATH.pub (OpenSSH)."""
    public_path = Path(f"{path}.pub")
    if not path.parent.is_dir():
        raise SigningError(f"{path}: folder {path.parent} does not exist; create it first")
    for existing in (path, public_path):
        if existing.exists() or existing.is_symlink():
            raise SigningError(f"{existing} exists; persistaudit never overwrites a key")
    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption(),
    )
    public = f"{openssh_public(key.public_key())} {comment}\n".encode()
    try:
        _write_new(path, private, 0o600)
        _write_new(public_path, public, 0o644)
    except OSError as exc:
        where = exc.filename or path
        raise SigningError(f"{where}: cannot write the key: {exc.strerror}") from None
    return path, public_path


def _write_new(path: Path, data: bytes, mode: int) -> None:
    """Create path (never through a symlink, never over an existing file) and write data."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)


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
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
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
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise SigningError(f"{path}: not an OpenSSH public key: {exc}") from None
    if not isinstance(key, Ed25519PublicKey):
        raise SigningError(f"{path}: not an Ed25519 public key")
    return key


@dataclass
class Contents:
    """A report folder as signing sees it: its regular files, and anything else found."""

    files: dict[str, Path] = field(default_factory=dict)  # POSIX relative path -> path
    folders: list[str] = field(default_factory=list)
    others: dict[str, str] = field(default_factory=dict)  # path -> what it is: tampering

    @property
    def problems(self) -> list[str]:
        return [f"{rel}: {what}" for rel, what in self.others.items()]


def scan(folder: Path) -> Contents:
    """Every entry below folder, symbolic links never followed.

    Only regular files with one name are signed: a symbolic link or a hard link lets a
    file change after it was verified (through its other name), and a pipe or device has no
    content to sign.
    """
    out = Contents()
    pending = [(folder, "")]
    while pending:
        here, prefix = pending.pop()
        try:
            with os.scandir(here) as entries:
                found = sorted(entries, key=lambda e: e.name)
        except OSError as exc:
            out.others[prefix.rstrip("/") or "."] = f"cannot list the folder: {exc.strerror}"
            continue
        for entry in found:
            rel = prefix + entry.name
            try:
                info = entry.stat(follow_symlinks=False)
            except OSError as exc:
                out.others[rel] = f"cannot read: {exc.strerror}"
                continue
            kind = _kind(info)
            if kind == "folder":
                out.folders.append(rel)
                pending.append((Path(entry.path), rel + "/"))
            elif kind:
                out.others[rel] = f"{kind}, not a regular file"
            elif rel not in SIGNING_FILES:
                out.files[rel] = Path(entry.path)
    return out


def _kind(info: os.stat_result) -> str:
    """What a folder entry is: "" for a regular file with one name, "folder", or the rest."""
    mode = info.st_mode
    if stat.S_ISDIR(mode):
        return "folder"
    if stat.S_ISLNK(mode):
        return "a symbolic link"
    if stat.S_ISFIFO(mode):
        return "a named pipe (FIFO)"
    if not stat.S_ISREG(mode):
        return "a socket or device"
    if info.st_nlink > 1:
        return f"a hard link ({info.st_nlink} names)"
    return ""


def file_digest(path: Path) -> str:
    """sha256 of a regular file, read without following a link or blocking on a pipe."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    with os.fdopen(fd, "rb") as fh:
        kind = _kind(os.fstat(fh.fileno()))
        if kind:
            raise OSError(0, f"{kind}, not a regular file", str(path))
        digest = hashlib.sha256()
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def digests(folder: Path) -> dict[str, str]:
    """sha256 of every file below folder except the signature, by POSIX relative path.

    Raises SigningError when the folder holds anything but regular files and folders.
    """
    contents = check_folder(folder)
    try:
        return {rel: file_digest(path) for rel, path in contents.files.items()}
    except OSError as exc:
        raise SigningError(f"{exc.filename}: cannot sign: {exc.strerror}") from None


def check_folder(folder: Path) -> Contents:
    """The folder's contents, if it can be signed: regular files only, no empty folder."""
    contents = scan(folder)
    empty = [d for d in contents.folders if not any(f.startswith(d + "/") for f in contents.files)]
    problems = contents.problems + [f"{d}: a folder with no file in it" for d in empty]
    problems += [f"{rel}: {why}" for rel in contents.files if (why := checksums.unlistable(rel))]
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise SigningError(f"{folder}: cannot sign: {problems[0]}{more}")
    return contents


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
    """Write signature.json, then SHA256SUMS and SHA256SUMS.sig, over every file in folder."""
    for name in SIGNING_FILES:
        partial = folder / f".{name}.partial"
        if partial.is_file() and not partial.is_symlink():
            partial.unlink()  # left by a sign that was cut short: never signed
    files = digests(folder)
    payload = {
        "schema": SIGNATURE_SCHEMA,
        **signoff,
        "public_key": openssh_public(key.public_key()),
        "files": files,
    }
    signature = base64.b64encode(key.sign(_canonical(payload))).decode()
    text = (json.dumps({**payload, "signature": signature}, indent=2) + "\n").encode()
    target = _replace(folder, SIGNATURE_FILE, text)
    sign_sums(folder, key, {**files, SIGNATURE_FILE: hashlib.sha256(text).hexdigest()})
    return target


def sign_sums(folder: Path, key: Ed25519PrivateKey, files: dict[str, str]) -> None:
    """Write SHA256SUMS listing files ({path: sha256}) and its OpenSSH signature."""
    sums = checksums.render(files).encode()
    _replace(folder, SUMS_FILE, sums)
    _replace(folder, SUMS_SIGNATURE, sshsig.sign(key, sums, NAMESPACE).encode())


def _replace(folder: Path, name: str, data: bytes) -> Path:
    """Write folder/name whole or not at all; a link of that name is replaced, never followed."""
    target, partial = folder / name, folder / f".{name}.partial"
    try:
        _write_new(partial, data, 0o644)
        os.replace(partial, target)
    except OSError as exc:
        partial.unlink(missing_ok=True)
        raise SigningError(f"{target}: cannot write: {exc.strerror}") from None
    return target


@dataclass
class Verification:
    signer: dict[str, str] = field(default_factory=dict)  # as signature.json states it
    fingerprint: str = ""  # of the key that made signature.json's signature, computed here
    ssh_fingerprint: str = ""  # of the key that made SHA256SUMS.sig; "" when there is none
    principals: list[str] = field(default_factory=list)  # allowed signers that match
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass(frozen=True)
class Signature:
    """A signature.json, strictly parsed: every field present, typed and canonical."""

    payload: dict[str, Any]  # every key but signature: what was signed
    public_key: Ed25519PublicKey
    signature: bytes

    @property
    def files(self) -> dict[str, str]:
        return dict(self.payload["files"])


def read_signature(path: Path) -> Signature:
    """Parse signature.json; anything lenient parsing would accept is an error here.

    Exact keys and types (its JSON Schema), base64 without stray characters and in the one
    canonical encoding of its bytes, an Ed25519 key in its canonical OpenSSH form, and file
    names that stay inside the folder.
    """
    doc = read_json(path)
    validate(path, doc, SIGNATURE_SCHEMA_FILE)
    kind, _, blob = doc["public_key"].partition(" ")
    if kind != KEY_TYPE:
        raise SigningError(
            f"{path}: public_key: a {clip_value(kind)} key; only {KEY_TYPE} keys sign reports"
        )
    raw_key = _strict_b64(path, "public_key", blob)
    try:
        public = serialization.load_ssh_public_key(f"{KEY_TYPE} {blob}".encode())
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise SigningError(f"{path}: public_key: not an Ed25519 key: {exc}") from None
    if (
        not isinstance(public, Ed25519PublicKey)
        or base64.b64decode(openssh_public(public).split()[1]) != raw_key
    ):
        raise SigningError(f"{path}: public_key: not a canonical Ed25519 key")
    signature = _strict_b64(path, "signature", doc["signature"])
    if len(signature) != SIGNATURE_BYTES:
        raise SigningError(f"{path}: signature: {len(signature)} bytes, not {SIGNATURE_BYTES}")
    for name in doc["files"]:
        if not _inside(name):
            raise SigningError(f"{path}: files: {clip_value(name)} is not a path inside the folder")
    payload = {k: v for k, v in doc.items() if k != "signature"}
    return Signature(payload, public, signature)


def _strict_b64(path: Path, name: str, text: str) -> bytes:
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise SigningError(f"{path}: {name}: not valid base64") from None
    if base64.b64encode(raw).decode("ascii") != text:
        raise SigningError(f"{path}: {name}: not the canonical base64 of its bytes")
    return raw


def _inside(name: str) -> bool:
    """A POSIX path relative to the folder, without . or .. parts, and not the signature."""
    parts = name.split("/")
    return (
        name != SIGNATURE_FILE
        and "\0" not in name
        and all(part not in ("", ".", "..") for part in parts)
        and PurePosixPath(name).as_posix() == name
    )


@dataclass(frozen=True)
class Trust:
    """Whom a verification trusts: a public key, and/or an allowed-signers file."""

    key: Ed25519PublicKey | None = None
    signers: list[allowed_signers.Signer] | None = None
    signers_file: Path | None = None
    identity: str | None = None


def verify(
    folder: Path, trusted: Ed25519PublicKey | None = None, trust: Trust | None = None
) -> Verification:
    """Check both signatures and every file's digest; each problem names its file.

    A folder signed before SHA256SUMS existed has signature.json alone, and still verifies,
    unless an allowed-signers file is given: that checks SHA256SUMS.sig, which it lacks.
    """
    trust = trust or Trust(key=trusted)
    contents = scan(folder)
    present = {name: _entry(folder / name) for name in SIGNING_FILES}
    if present[SIGNATURE_FILE] is None and present[SUMS_SIGNATURE] is None:
        raise SigningError(
            f"{folder}: no {SIGNATURE_FILE}: the report is not signed (nor is there a "
            f"{SUMS_SIGNATURE})"
        )
    result = Verification()
    if present[SIGNATURE_FILE] is not None:
        _verify_signature_json(folder, contents, trust, result)
    if present[SUMS_SIGNATURE] is not None or present[SUMS_FILE] is not None:
        _verify_sums(folder, contents, trust, result)
    elif trust.signers is not None:
        result.problems.append(
            f"{SUMS_SIGNATURE}: missing, so --allowed-signers has nothing to check (signed by "
            "an earlier persistaudit: sign the folder again)"
        )
    result.problems = list(dict.fromkeys(result.problems))  # one line per problem
    return result


def _entry(path: Path) -> os.stat_result | None:
    try:
        return path.lstat()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise SigningError(f"{path}: cannot read: {exc.strerror}") from None


def _verify_signature_json(
    folder: Path, contents: Contents, trust: Trust, result: Verification
) -> None:
    path = folder / SIGNATURE_FILE
    info = path.lstat()
    if _kind(info):
        result.problems.append(f"{SIGNATURE_FILE}: {_kind(info)}, not a regular file")
        return
    signed = read_signature(path)
    payload = signed.payload
    result.signer = {k: str(payload[k]) for k in ("auditor", "role", "signed_at", "fingerprint")}
    result.fingerprint = fingerprint(signed.public_key)
    try:
        signed.public_key.verify(signed.signature, _canonical(payload))
    except InvalidSignature:
        result.problems.append(f"{SIGNATURE_FILE}: the signature does not match its contents")
    if payload["fingerprint"] != result.fingerprint:
        result.problems.append(
            f"{SIGNATURE_FILE}: states the key {payload['fingerprint']}, but the key that signed "
            f"is {result.fingerprint}"
        )
    if trust.key is not None and openssh_public(trust.key) != openssh_public(signed.public_key):
        result.problems.append(
            f"{SIGNATURE_FILE}: signed by {result.fingerprint}, not by the trusted key "
            f"{fingerprint(trust.key)}"
        )
    result.problems += _file_problems(contents, signed.files)


def _read_small(path: Path, limit: int) -> bytes | str:
    """A regular file's bytes, or what it is instead (a link, a pipe, too large, missing)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except FileNotFoundError:
        return "missing"
    except OSError as exc:
        info = _entry(path)
        return f"{_kind(info)}, not a regular file" if info and _kind(info) else str(exc.strerror)
    with os.fdopen(fd, "rb") as fh:
        kind = _kind(os.fstat(fh.fileno()))
        if kind:
            return f"{kind}, not a regular file"
        data = fh.read(limit + 1)
    return data if len(data) <= limit else f"larger than {limit // 1024} KiB"


def _verify_sums(folder: Path, contents: Contents, trust: Trust, result: Verification) -> None:
    """SHA256SUMS.sig over SHA256SUMS, by whom trust allows; SHA256SUMS over every file."""
    sums = _read_small(folder / SUMS_FILE, MAX_SUMS_BYTES)
    armored = _read_small(folder / SUMS_SIGNATURE, MAX_SSHSIG_BYTES)
    if isinstance(armored, str):
        result.problems.append(f"{SUMS_SIGNATURE}: {armored}")
        if armored == "missing":
            result.problems[-1] += f" ({SUMS_FILE} is not signed)"
    if isinstance(sums, str):
        result.problems.append(f"{SUMS_FILE}: {sums}")
    if isinstance(armored, str) or isinstance(sums, str):
        return
    try:
        sig = sshsig.parse(armored.decode("ascii"))
    except (UnicodeDecodeError, sshsig.SshsigFormatError) as exc:
        raise SigningError(f"{folder / SUMS_SIGNATURE}: not an SSH signature: {exc}") from None
    result.ssh_fingerprint = fingerprint(sig.public_key)
    good = sig.verifies(sums)
    if not good:
        result.problems.append(
            f"{SUMS_FILE}: changed since it was signed ({SUMS_SIGNATURE} does not match it)"
        )
    if sig.namespace != NAMESPACE:
        result.problems.append(
            f"{SUMS_SIGNATURE}: made for the namespace {clip_value(sig.namespace)}, "
            f"not {NAMESPACE!r}"
        )
    _check_signer(sig, trust, result)
    try:
        listed = checksums.parse(sums.decode("utf-8"))
    except (UnicodeDecodeError, checksums.SumsFormatError) as exc:
        if not good:
            return  # already INVALID: what it lists is not what was signed
        raise SigningError(f"{folder / SUMS_FILE}: not a SHA256SUMS file: {exc}") from None
    for name in listed:
        if name != SIGNATURE_FILE and (not _inside(name) or name in SIGNING_FILES):
            raise SigningError(
                f"{folder / SUMS_FILE}: {clip_value(name)} is not a path inside the folder"
            )
    covered = Contents(dict(contents.files), contents.folders, dict(contents.others))
    info = _entry(folder / SIGNATURE_FILE)
    if info is not None and not _kind(info):  # else contents.others says what it is
        covered.files[SIGNATURE_FILE] = folder / SIGNATURE_FILE
    result.problems += _file_problems(covered, listed)


def _check_signer(sig: sshsig.Signature, trust: Trust, result: Verification) -> None:
    """The key of SHA256SUMS.sig: signature.json's, the trusted one, an allowed signer."""
    made_by = result.ssh_fingerprint
    if result.fingerprint and result.fingerprint != made_by:
        result.problems.append(
            f"{SUMS_SIGNATURE}: made with {made_by}, but {SIGNATURE_FILE} with {result.fingerprint}"
        )
    if trust.key is not None and openssh_public(trust.key) != openssh_public(sig.public_key):
        result.problems.append(
            f"{SUMS_SIGNATURE}: signed by {made_by}, not by the trusted key "
            f"{fingerprint(trust.key)}"
        )
    if trust.signers is None:
        return
    found, why = allowed_signers.principals_for(
        trust.signers, sshsig.public_blob(sig.public_key), NAMESPACE, trust.identity
    )
    result.principals = found
    if not found:
        who = f" as {clip_value(trust.identity)}" if trust.identity is not None else ""
        result.problems.append(
            f"{SUMS_SIGNATURE}: signed by {made_by}, which {trust.signers_file} does not allow"
            f"{who} for {NAMESPACE!r}: {why}"
        )


def _file_problems(contents: Contents, files: dict[str, str]) -> list[str]:
    """Each signed file changed, missing or not a regular file; each file or folder added."""
    problems = list(contents.problems)
    for name, digest in sorted(files.items()):
        path = contents.files.get(name)
        if path is None:
            if name not in contents.others:  # else already said what is there instead
                problems.append(f"{name}: missing (it was signed)")
            continue
        try:
            now = file_digest(path)
        except OSError as exc:
            problems.append(f"{name}: cannot read: {exc.strerror}")
            continue
        if now != digest:
            problems.append(f"{name}: changed since it was signed")
    for name in sorted(set(contents.files) - set(files)):
        problems.append(f"{name}: added after signing (not covered by the signature)")
    for name in contents.folders:
        if not any(f.startswith(name + "/") for f in files):
            problems.append(f"{name}: a folder added after signing (no signed file in it)")
    return problems


def now_utc() -> datetime:
    return datetime.now(timezone.utc)

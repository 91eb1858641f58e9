from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from persistaudit import signing
from persistaudit.cli import main
from tests.helpers import REPO

GOLDEN = REPO / "tests" / "golden"


def cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.output


def report_folder(tmp_path: Path) -> Path:
    """An unsigned report folder made from golden results: results, report, evidence, JUnit."""
    folder = tmp_path / "report"
    (folder / "evidence").mkdir(parents=True)
    shutil.copy(GOLDEN / "fail.results.json", folder / "results.json")
    assert cli("report", str(folder / "results.json"), "-o", str(folder / "report.md"))[0] == 0
    (folder / "evidence" / "startup.log").write_text("notes-app: ready\n")
    (folder / "junit.xml").write_text("<testsuites/>\n")
    return folder


@pytest.fixture
def signed(tmp_path: Path) -> tuple[Path, Path]:
    """A report folder made from golden results, signed with a fresh key."""
    folder = report_folder(tmp_path)
    key = tmp_path / "auditor"
    assert cli("keygen", str(key))[0] == 0
    code, out = cli(
        "sign",
        str(folder),
        "--key",
        str(key),
        "--auditor",
        "Ada Auditor",
        "--role",
        "Release auditor",
    )
    assert code == 0, out
    return folder, key


def test_a_signed_folder_verifies_and_shows_the_sign_off(signed: tuple[Path, Path]) -> None:
    folder, key = signed
    code, out = cli("verify", str(folder), "--pubkey", f"{key}.pub")
    assert code == 0, out
    assert out.startswith("valid: signed by Ada Auditor (Release auditor) at ")
    report = (folder / "report.md").read_text()
    assert "| Release auditor | Ada Auditor |" in report
    assert signing.fingerprint(signing.load_public_key(Path(f"{key}.pub"))) in report
    files = json.loads((folder / "signature.json").read_text())["files"]
    assert sorted(files) == ["evidence/startup.log", "junit.xml", "report.md", "results.json"]


@pytest.mark.parametrize("name", ["report.md", "results.json", "junit.xml", "evidence/startup.log"])
def test_one_changed_byte_in_any_file_fails_naming_it(signed: tuple[Path, Path], name: str) -> None:
    folder, _ = signed
    path = folder / name
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    result = CliRunner().invoke(main, ["verify", str(folder)])
    assert result.exit_code == 1
    assert f"INVALID: {name}: changed since it was signed" in result.output


def test_removed_and_added_files_fail(signed: tuple[Path, Path]) -> None:
    folder, _ = signed
    (folder / "junit.xml").unlink()
    (folder / "evidence" / "extra.log").write_text("planted later\n")
    result = CliRunner().invoke(main, ["verify", str(folder)])
    assert result.exit_code == 1
    assert "junit.xml: missing (it was signed)" in result.output
    assert "evidence/extra.log: added after signing" in result.output


def test_an_edited_signature_file_fails(signed: tuple[Path, Path]) -> None:
    folder, _ = signed
    doc = json.loads((folder / "signature.json").read_text())
    doc["auditor"] = "Mallory"
    (folder / "signature.json").write_text(json.dumps(doc))
    result = CliRunner().invoke(main, ["verify", str(folder)])
    assert result.exit_code == 1
    assert "signature.json: the signature does not match its contents" in result.output


def test_another_key_is_not_trusted(signed: tuple[Path, Path], tmp_path: Path) -> None:
    folder, _ = signed
    cli("keygen", str(tmp_path / "other"))
    result = CliRunner().invoke(
        main, ["verify", str(folder), "--pubkey", str(tmp_path / "other.pub")]
    )
    assert result.exit_code == 1
    assert "not by the trusted key" in result.output


def test_openssh_keys_made_by_ssh_keygen_sign(signed: tuple[Path, Path], tmp_path: Path) -> None:
    if shutil.which("ssh-keygen") is None:
        pytest.skip("ssh-keygen is not installed")
    folder, _ = signed
    key = tmp_path / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    assert cli("sign", str(folder), "--key", str(key), "--auditor", "A", "--role", "B")[0] == 0
    assert cli("verify", str(folder), "--pubkey", f"{key}.pub")[0] == 0
    listed = subprocess.run(["ssh-keygen", "-lf", f"{key}.pub"], capture_output=True, text=True)
    assert signing.fingerprint(signing.load_public_key(Path(f"{key}.pub"))) in listed.stdout


def test_bad_keys_and_unsigned_folders_are_one_line_exit_2(tmp_path: Path) -> None:
    (tmp_path / "results.json").write_text((GOLDEN / "pass.results.json").read_text())
    (tmp_path / "not-a-key").write_text("hello\n")
    code, out = cli(
        "sign", str(tmp_path), "--key", str(tmp_path / "not-a-key"), "--auditor", "A", "--role", "B"
    )
    assert code == 2
    assert "not-a-key: not a usable private key" in out
    code, out = cli("verify", str(tmp_path))
    assert code == 2
    assert "no signature.json: the report is not signed" in out
    key = tmp_path / "k"
    cli("keygen", str(key))
    code, out = cli("keygen", str(key))
    assert code == 2
    assert "exists; persistaudit never overwrites a key" in out
    assert oct(key.stat().st_mode & 0o777) == "0o600"


# -- tampering: each link of the chain, and each way to re-encode what was signed -----------


def verify_out(folder: Path, *extra: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, ["verify", str(folder), *extra])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise AssertionError(f"traceback: {result.exception!r}") from result.exception
    return result.exit_code, result.stdout, result.stderr


def signature_doc(folder: Path) -> dict[str, Any]:
    return dict(json.loads((folder / "signature.json").read_text()))


def write_signature(folder: Path, doc: dict[str, Any]) -> None:
    (folder / "signature.json").write_text(json.dumps(doc, indent=2) + "\n")


def resign(folder: Path, key: Ed25519PrivateKey, **changes: Any) -> None:
    """What a forger can do: change the signed fields and sign them with a key of theirs."""
    doc = signature_doc(folder)
    payload = {k: v for k, v in doc.items() if k != "signature"} | changes
    signature = base64.b64encode(key.sign(signing._canonical(payload))).decode()
    write_signature(folder, {**payload, "signature": signature})
    # And SHA256SUMS with its OpenSSH signature, which list signature.json, by the same key.
    listed = payload["files"] | {"signature.json": signing.file_digest(folder / "signature.json")}
    signing.sign_sums(folder, key, listed)


def test_verify_prints_the_fingerprint_of_the_key_that_verified(signed: tuple[Path, Path]) -> None:
    folder, key = signed
    code, out, _ = verify_out(folder)
    assert code == 0
    computed = signing.fingerprint(signing.load_public_key(Path(f"{key}.pub")))
    assert out.splitlines()[0].endswith(f" with {computed}")


def test_a_resigned_folder_cannot_claim_another_keys_fingerprint(
    signed: tuple[Path, Path],
) -> None:
    folder, key = signed
    ada = signing.fingerprint(signing.load_public_key(Path(f"{key}.pub")))
    mallory = Ed25519PrivateKey.generate()
    resign(
        folder,
        mallory,
        auditor="Mallory",
        public_key=signing.openssh_public(mallory.public_key()),
        fingerprint=ada,  # the claim; the key that signs is Mallory's
    )
    code, out, err = verify_out(folder)
    assert code == 1
    assert ada not in out
    real = signing.fingerprint(mallory.public_key())
    assert f"signature.json: states the key {ada}, but the key that signed is {real}" in err


def test_a_symlinked_file_is_tampering_even_with_the_same_content(
    signed: tuple[Path, Path], tmp_path: Path
) -> None:
    folder, _ = signed
    log = folder / "evidence" / "startup.log"
    outside = tmp_path / "outside.log"
    outside.write_bytes(log.read_bytes())
    log.unlink()
    log.symlink_to(outside)
    code, _, err = verify_out(folder)
    assert code == 1
    assert "INVALID: evidence/startup.log: a symbolic link, not a regular file" in err
    assert "evidence/startup.log: missing" not in err


def test_a_symlinked_folder_is_tampering(signed: tuple[Path, Path], tmp_path: Path) -> None:
    folder, _ = signed
    shutil.copytree(folder / "evidence", tmp_path / "copy")
    shutil.rmtree(folder / "evidence")
    (folder / "evidence").symlink_to(tmp_path / "copy")
    code, _, err = verify_out(folder)
    assert code == 1
    assert "INVALID: evidence: a symbolic link, not a regular file" in err


def test_a_hard_linked_file_is_tampering(signed: tuple[Path, Path], tmp_path: Path) -> None:
    folder, _ = signed
    os.link(folder / "junit.xml", tmp_path / "second-name.xml")  # editable from outside
    code, _, err = verify_out(folder)
    assert code == 1
    assert "INVALID: junit.xml: a hard link (2 names), not a regular file" in err


def test_a_fifo_is_tampering_and_never_blocks(signed: tuple[Path, Path]) -> None:
    folder, _ = signed
    os.mkfifo(folder / "evidence" / "pipe")
    code, _, err = verify_out(folder)
    assert code == 1
    assert "INVALID: evidence/pipe: a named pipe (FIFO), not a regular file" in err


def test_a_fifo_in_place_of_a_signed_file_never_blocks(signed: tuple[Path, Path]) -> None:
    folder, _ = signed
    (folder / "junit.xml").unlink()
    os.mkfifo(folder / "junit.xml")
    code, _, err = verify_out(folder)
    assert code == 1
    assert "INVALID: junit.xml: a named pipe (FIFO), not a regular file" in err


def test_an_added_folder_is_tampering(signed: tuple[Path, Path]) -> None:
    folder, _ = signed
    (folder / "extra" / "deeper").mkdir(parents=True)
    code, _, err = verify_out(folder)
    assert code == 1
    assert "INVALID: extra: a folder added after signing" in err
    assert "INVALID: extra/deeper: a folder added after signing" in err


def test_a_symlinked_signature_file_is_tampering(signed: tuple[Path, Path], tmp_path: Path) -> None:
    folder, _ = signed
    shutil.move(folder / "signature.json", tmp_path / "signature.json")
    (folder / "signature.json").symlink_to(tmp_path / "signature.json")
    code, _, err = verify_out(folder)
    assert code == 1
    assert "INVALID: signature.json: a symbolic link, not a regular file" in err


def test_sign_refuses_a_folder_with_links_and_writes_nothing(
    signed: tuple[Path, Path], tmp_path: Path
) -> None:
    folder, key = signed
    victim = tmp_path / "victim.md"
    victim.write_text("not the report\n")
    (folder / "report.md").unlink()
    (folder / "report.md").symlink_to(victim)
    before = (folder / "signature.json").read_bytes()
    code, out = cli("sign", str(folder), "--key", str(key), "--auditor", "A", "--role", "B")
    assert code == 2
    assert "cannot sign: report.md: a symbolic link, not a regular file" in out
    assert victim.read_text() == "not the report\n"  # never written through the link
    assert (folder / "signature.json").read_bytes() == before


def test_sign_never_writes_through_a_signature_link(
    signed: tuple[Path, Path], tmp_path: Path
) -> None:
    folder, key = signed
    private = signing.load_private_key(key)
    victim = tmp_path / "victim.json"
    victim.write_text("{}\n")
    (folder / "signature.json").unlink()
    (folder / "signature.json").symlink_to(victim)
    with pytest.raises(signing.SigningError, match=r"signature\.json: a symbolic link"):
        signing.sign(
            folder,
            private,
            signing.signoff_block(private.public_key(), "A", "B", signing.now_utc()),
        )
    assert victim.read_text() == "{}\n"


def flip_unused_bits(b64: str) -> str:
    """Another base64 text of the same bytes: the last character's unused bits set."""
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    body = b64.rstrip("=")
    last = alphabet.index(body[-1])
    twin = body[:-1] + alphabet[last | 0b1111] + b64[len(body) :]
    assert twin != b64
    assert base64.b64decode(twin) == base64.b64decode(b64)
    return twin


ED25519_L = 2**252 + 27742317777372353535851937790883648493


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            lambda d: {**d, "signature": flip_unused_bits(d["signature"])},
            "signature.json: signature: not the canonical base64 of its bytes",
        ),
        (
            lambda d: {**d, "signature": d["signature"][:40] + "\n" + d["signature"][40:]},
            "signature.json: signature: ",
        ),
        (
            lambda d: {**d, "public_key": d["public_key"] + " ada@laptop"},
            "signature.json: public_key: ",
        ),
        (
            lambda d: {**d, "public_key": d["public_key"] + "AAAA"},  # extra bytes in the blob
            "signature.json: public_key: not an Ed25519 key",
        ),
        (
            lambda d: {**d, "public_key": "ssh-foo AAAAB3NzaC1yc2E="},
            "signature.json: public_key: a 'ssh-foo' key; only ssh-ed25519 keys sign reports",
        ),
        (lambda d: {**d, "files": []}, 'signature.json: files: [] is not of type "object"'),
        (lambda d: {**d, "files": {}}, "signature.json: files: {} has less than 1 property"),
        (
            lambda d: {**d, "files": {**d["files"], "../outside": "0" * 64}},
            "signature.json: files: '../outside' is not a path inside the folder",
        ),
        (
            lambda d: {**d, "note": "approved"},
            "signature.json: Additional properties are not allowed ('note' was unexpected)",
        ),
        (
            lambda d: {k: v for k, v in d.items() if k != "role"},
            'signature.json: "role" is a required property',
        ),
        (lambda d: {**d, "auditor": 7}, 'signature.json: auditor: 7 is not of type "string"'),
    ],
)
def test_a_malformed_or_re_encoded_signature_file_is_refused(
    signed: tuple[Path, Path], change: Any, expected: str
) -> None:
    folder, _ = signed
    write_signature(folder, change(signature_doc(folder)))
    code, _, err = verify_out(folder)
    assert code == 2
    assert err.count("\n") == 1
    assert expected in err


def test_duplicate_keys_in_the_signature_file_are_refused(signed: tuple[Path, Path]) -> None:
    """A reader that keeps the first of two keys would show another signer than Python."""
    folder, _ = signed
    text = (folder / "signature.json").read_text()
    (folder / "signature.json").write_text(text.replace("{", '{\n  "auditor": "Mallory",', 1))
    code, _, err = verify_out(folder)
    assert code == 2
    assert "signature.json: not valid JSON: duplicate key 'auditor'" in err


def test_a_non_canonical_ed25519_scalar_is_refused(signed: tuple[Path, Path]) -> None:
    """S + L verifies under lenient Ed25519 implementations: another signature, same meaning."""
    folder, _ = signed
    doc = signature_doc(folder)
    raw = base64.b64decode(doc["signature"])
    s = int.from_bytes(raw[32:], "little") + ED25519_L
    assert s < 2**256
    doc["signature"] = base64.b64encode(raw[:32] + s.to_bytes(32, "little")).decode()
    write_signature(folder, doc)
    code, _, err = verify_out(folder)
    assert code == 1
    assert "signature.json: the signature does not match its contents" in err


def test_a_signature_by_an_rsa_key_is_refused(signed: tuple[Path, Path]) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    folder, _ = signed
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
    ssh = rsa_key.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    write_signature(folder, {**signature_doc(folder), "public_key": ssh.decode()})
    code, _, err = verify_out(folder)
    assert code == 2
    assert "public_key: a 'ssh-rsa' key; only ssh-ed25519 keys sign reports" in err


def test_an_unknown_trusted_key_type_is_one_line(signed: tuple[Path, Path], tmp_path: Path) -> None:
    folder, _ = signed
    (tmp_path / "odd.pub").write_text("ssh-foo AAAAB3NzaC1yc2E= x\n")
    code, _, err = verify_out(folder, "--pubkey", str(tmp_path / "odd.pub"))
    assert code == 2
    assert err.count("\n") == 1
    assert "odd.pub: not an OpenSSH public key" in err


def test_a_signer_name_cannot_forge_output_lines(signed: tuple[Path, Path]) -> None:
    folder, key = signed
    resign(folder, signing.load_private_key(key), auditor="Ada\nvalid: signed by the CEO")
    code, out, _ = verify_out(folder)
    assert code == 0
    assert out.startswith("valid: signed by Ada valid: signed by the CEO (")
    assert out.count("valid: ") == 3  # the forged one, and SHA256SUMS.sig's
    assert out.count("\n") == 3  # the two lines and the note that no --pubkey was given


def test_the_bundled_schemas_are_valid_json_schemas() -> None:
    import jsonschema  # the reference implementation (dev); persistaudit runs jsonschema-rs

    for name in ("results-v1.json", "signature-v1.json"):
        schema = json.loads((REPO / "src" / "persistaudit" / "schemas" / name).read_text())
        jsonschema.Draft202012Validator.check_schema(schema)
    doc = signature_doc_of_golden_shape()
    jsonschema.validate(
        doc, json.loads((REPO / "src/persistaudit/schemas/signature-v1.json").read_text())
    )


def signature_doc_of_golden_shape() -> dict[str, Any]:
    key = Ed25519PrivateKey.generate()
    return {
        "schema": signing.SIGNATURE_SCHEMA,
        **signing.signoff_block(key.public_key(), "A", "B", signing.now_utc()),
        "public_key": signing.openssh_public(key.public_key()),
        "files": {"report.md": "0" * 64},
        "signature": base64.b64encode(key.sign(b"x")).decode(),
    }

"""SSHSIG signatures, allowed-signers files and SHA256SUMS, without a tool outside Python."""

from __future__ import annotations

import base64
import shutil
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from persistaudit import allowed_signers, checksums, signing, sshsig
from persistaudit.cli import main
from persistaudit.exceptions import AllowedSignersError
from tests.helpers import REPO

GOLDEN = REPO / "tests" / "golden"
KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))


def cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.output


# -- SSHSIG ------------------------------------------------------------------------------------


@settings(max_examples=50, deadline=None)
@given(message=st.binary(max_size=300), namespace=st.text(min_size=1, max_size=20))
def test_a_signature_verifies_its_message_and_no_other(message: bytes, namespace: str) -> None:
    armored = sshsig.sign(KEY, message, namespace)
    lines = armored.splitlines()
    assert lines[0] == sshsig.BEGIN
    assert lines[-1] == sshsig.END
    assert all(len(line) <= sshsig.LINE for line in lines[1:-1])
    parsed = sshsig.parse(armored)
    assert parsed.namespace == namespace
    assert parsed.hash_name == "sha512"
    assert parsed.verifies(message)
    assert not parsed.verifies(message + b"\n")
    if message:
        flipped = bytes([message[0] ^ 1]) + message[1:]
        assert not parsed.verifies(flipped)


def test_signatures_are_deterministic_for_a_key() -> None:
    assert sshsig.sign(KEY, b"x", "persistaudit") == sshsig.sign(KEY, b"x", "persistaudit")
    assert sshsig.sign(KEY, b"x", "persistaudit") != sshsig.sign(KEY, b"x", "git")


def blob_of(armored: str) -> bytes:
    return base64.b64decode("".join(armored.splitlines()[1:-1]))


def armor(blob: bytes) -> str:
    text = base64.b64encode(blob).decode()
    return "\n".join([sshsig.BEGIN, text, sshsig.END]) + "\n"


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda b: b + b"\0", "1 stray bytes after its signature"),
        (lambda b: b[:-10], "cut short"),
        (lambda b: b"SSHSIX" + b[6:], "no SSHSIG preamble"),
        (lambda b: b[:6] + (2).to_bytes(4, "big") + b[10:], "version 2"),
        (lambda b: b.replace(b"sha512", b"md5xyz"), "hash algorithm 'md5xyz'"),
        (lambda b: b.replace(b"ssh-ed25519", b"ssh-rsa0000", 1), "a 'ssh-rsa0000' key"),
    ],
)
def test_a_malformed_signature_says_what_is_wrong(change: object, expected: str) -> None:
    blob = blob_of(sshsig.sign(KEY, b"m", "persistaudit"))
    with pytest.raises(sshsig.SshsigFormatError, match=expected):
        sshsig.parse(armor(change(blob)))  # type: ignore[operator]


@pytest.mark.parametrize(
    "text", ["", "hello", f"{sshsig.BEGIN}\n!!!!\n{sshsig.END}\n", f"{sshsig.BEGIN}\nAAAA\n"]
)
def test_text_that_is_no_armored_signature_is_refused(text: str) -> None:
    with pytest.raises(sshsig.SshsigFormatError):
        sshsig.parse(text)


# -- allowed signers ----------------------------------------------------------------------------

PUBLIC = signing.openssh_public(KEY.public_key())
BLOB = sshsig.public_blob(KEY.public_key())


def signers(text: str, tmp_path: Path) -> list[allowed_signers.Signer]:
    path = tmp_path / "allowed_signers"
    path.write_text(text)
    return allowed_signers.load(path)


def test_the_public_blob_is_the_openssh_public_key() -> None:
    assert base64.b64encode(BLOB).decode() == PUBLIC.split()[1]


@pytest.mark.parametrize(
    ("line", "identity", "found"),
    [
        (f"ada@example.org {PUBLIC}", "ada@example.org", ["ada@example.org"]),
        (f"ada@example.org {PUBLIC} a comment with spaces", None, ["ada@example.org"]),
        (f"*@example.org {PUBLIC}", "ada@example.org", ["ada@example.org"]),
        (f"*@example.org,!eve@example.org {PUBLIC}", "eve@example.org", []),
        (f"ad?@example.org {PUBLIC}", "ada@example.org", ["ada@example.org"]),
        (f"ad?@example.org {PUBLIC}", "adam@example.org", []),
        (f"ADA@example.org {PUBLIC}", "ada@example.org", []),  # principals are case-sensitive
        (f'"ada@example.org" {PUBLIC}', "ada@example.org", ["ada@example.org"]),
        (f'ada namespaces="git,persist*" {PUBLIC}', "ada", ["ada"]),
        (f'ada namespaces="git" {PUBLIC}', "ada", []),
        (f"ada cert-authority {PUBLIC}", "ada", []),  # a CA key does not sign plain
        (f"ada valid-after=20000101 {PUBLIC}", "ada", ["ada"]),
        (f"ada valid-before=20000101Z {PUBLIC}", "ada", []),
        (f'ada valid-after="29991231",namespaces="persistaudit" {PUBLIC}', "ada", []),
        (f"ada ssh-ed25519 {base64.b64encode(b'another').decode()}", "ada", []),
        (f"# ada {PUBLIC}\n\n", "ada", []),
    ],
)
def test_a_signer_is_allowed_as_ssh_keygen_allows_it(
    line: str, identity: str | None, found: list[str], tmp_path: Path
) -> None:
    allowed, why = allowed_signers.principals_for(
        signers(line + "\n", tmp_path), BLOB, "persistaudit", identity
    )
    assert allowed == found
    assert bool(why) == (not found)


def test_the_validity_window_is_judged_at_a_given_time(tmp_path: Path) -> None:
    listed = signers(f"ada valid-after=20300101Z,valid-before=20310101Z {PUBLIC}\n", tmp_path)
    inside = datetime(2030, 6, 1, tzinfo=timezone.utc)
    assert allowed_signers.principals_for(listed, BLOB, "persistaudit", "ada", inside)[0]
    later = inside + timedelta(days=365)
    found, why = allowed_signers.principals_for(listed, BLOB, "persistaudit", "ada", later)
    assert not found
    assert "only before 2031-01-01" in why


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("ada\n", "allowed_signers:1: no key"),
        (f"ada\n{'ada'} ssh-ed25519\n", "allowed_signers:1: no key"),
        ("ada ssh-ed25519 not*base64\n", "allowed_signers:1: its key is not valid base64"),
        (f"ok {PUBLIC}\nada bogus=1 {PUBLIC}\n", "allowed_signers:2: an unknown option 'bogus'"),
        (f'ada namespaces="x {PUBLIC}\n', "allowed_signers:1: an unterminated quote"),
        (f"ada valid-after=2020 {PUBLIC}\n", "not in the form YYYYMMDD"),
    ],
)
def test_a_malformed_allowed_signers_file_is_one_line_naming_the_line(
    text: str, expected: str, tmp_path: Path
) -> None:
    with pytest.raises(AllowedSignersError, match=expected):
        signers(text, tmp_path)


@given(st.text(alphabet="ab*?", max_size=6), st.text(alphabet="ab", max_size=6))
def test_patterns_match_as_fnmatch_does_for_star_and_question_mark(pattern: str, text: str) -> None:
    import fnmatch

    assert allowed_signers.match_pattern(text, pattern) == fnmatch.fnmatchcase(text, pattern)


# -- SHA256SUMS ---------------------------------------------------------------------------------

NAMES = st.text(
    alphabet=st.characters(blacklist_characters="\n\r\\/", blacklist_categories=["Cs"]),
    min_size=1,
    max_size=12,
)


@given(st.dictionaries(NAMES, st.from_regex(r"[0-9a-f]{64}", fullmatch=True), min_size=1))
def test_sums_round_trip_sorted(digests: dict[str, str]) -> None:
    text = checksums.render(digests)
    assert checksums.parse(text) == digests
    names = [line[66:] for line in text.split("\n")[:-1]]
    assert names == sorted(digests)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "lists no file"),
        ("0" * 64 + "  a", "no line break"),
        ("0" * 63 + "  a\n", "line 1 is not"),
        ("0" * 64 + " a\n", "line 1 is not"),
        ("A" * 64 + "  a\n", "line 1 is not"),
        ("0" * 64 + "  a\n" + "1" * 64 + " *a\n", "line 2 lists 'a' a second time"),
    ],
)
def test_a_malformed_sums_file_says_which_line(text: str, expected: str) -> None:
    with pytest.raises(checksums.SumsFormatError, match=expected):
        checksums.parse(text)


# -- a signed folder: both signatures together --------------------------------------------------


@pytest.fixture
def signed(tmp_path: Path) -> tuple[Path, Path]:
    folder = tmp_path / "report"
    (folder / "evidence").mkdir(parents=True)
    shutil.copy(GOLDEN / "pass.results.json", folder / "results.json")
    (folder / "report.md").write_text("# report\n")
    (folder / "evidence" / "startup.log").write_text("ready\n")
    key = tmp_path / "key"
    assert cli("keygen", str(key))[0] == 0
    assert cli("sign", str(folder), "--key", str(key), "--auditor", "A", "--role", "B")[0] == 0
    return folder, key


def test_sign_lists_every_file_and_signature_json_in_sums(signed: tuple[Path, Path]) -> None:
    folder, key = signed
    listed = checksums.parse((folder / "SHA256SUMS").read_text())
    assert sorted(listed) == [
        "evidence/startup.log",
        "report.md",
        "results.json",
        "signature.json",
    ]
    assert all(listed[n] == signing.file_digest(folder / n) for n in listed)
    sig = sshsig.parse((folder / "SHA256SUMS.sig").read_text())
    assert sig.namespace == "persistaudit"
    assert sig.verifies((folder / "SHA256SUMS").read_bytes())
    assert signing.openssh_public(sig.public_key) == signing.openssh_public(
        signing.load_public_key(Path(f"{key}.pub"))
    )


def test_signing_again_replaces_both_signatures(signed: tuple[Path, Path]) -> None:
    folder, key = signed
    (folder / "evidence" / "later.log").write_text("more\n")
    assert cli("sign", str(folder), "--key", str(key), "--auditor", "A", "--role", "B")[0] == 0
    assert "evidence/later.log" in (folder / "SHA256SUMS").read_text()
    assert cli("verify", str(folder), "--pubkey", f"{key}.pub")[0] == 0


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("SHA256SUMS", "INVALID: SHA256SUMS: missing"),
        ("SHA256SUMS.sig", "INVALID: SHA256SUMS.sig: missing (SHA256SUMS is not signed)"),
        ("signature.json", "INVALID: signature.json: missing (it was signed)"),
    ],
)
def test_a_removed_signature_file_fails_naming_it(
    signed: tuple[Path, Path], name: str, expected: str
) -> None:
    folder, _ = signed
    (folder / name).unlink()
    code, out = cli("verify", str(folder))
    assert code == 1
    assert expected in out


def test_a_symlinked_sums_file_is_tampering(signed: tuple[Path, Path], tmp_path: Path) -> None:
    folder, _ = signed
    shutil.move(folder / "SHA256SUMS", tmp_path / "SHA256SUMS")
    (folder / "SHA256SUMS").symlink_to(tmp_path / "SHA256SUMS")
    code, out = cli("verify", str(folder))
    assert code == 1
    assert "INVALID: SHA256SUMS: a symbolic link, not a regular file" in out
    assert out.count("SHA256SUMS: a symbolic link") == 1


def test_a_signature_by_another_key_than_signature_json_fails(signed: tuple[Path, Path]) -> None:
    folder, _ = signed
    other = Ed25519PrivateKey.generate()
    sums = (folder / "SHA256SUMS").read_bytes()
    (folder / "SHA256SUMS.sig").write_text(sshsig.sign(other, sums, "persistaudit"))
    code, out = cli("verify", str(folder))
    assert code == 1
    assert "INVALID: SHA256SUMS.sig: made with SHA256:" in out
    assert "but signature.json with SHA256:" in out


def test_a_signature_for_another_namespace_fails(signed: tuple[Path, Path]) -> None:
    folder, key = signed
    sums = (folder / "SHA256SUMS").read_bytes()
    private = signing.load_private_key(key)
    (folder / "SHA256SUMS.sig").write_text(sshsig.sign(private, sums, "file"))
    code, out = cli("verify", str(folder))
    assert code == 1
    assert "INVALID: SHA256SUMS.sig: made for the namespace 'file', not 'persistaudit'" in out


def test_a_garbled_sshsig_is_one_line_exit_2(signed: tuple[Path, Path]) -> None:
    folder, _ = signed
    (folder / "SHA256SUMS.sig").write_text("not a signature\n")
    code, out = cli("verify", str(folder))
    assert code == 2
    assert out.count("\n") == 1
    assert "SHA256SUMS.sig: not an SSH signature: not an armored SSH signature" in out


def test_a_folder_signed_before_sums_existed_still_verifies(signed: tuple[Path, Path]) -> None:
    folder, key = signed
    (folder / "SHA256SUMS").unlink()
    (folder / "SHA256SUMS.sig").unlink()
    code, out = cli("verify", str(folder), "--pubkey", f"{key}.pub")
    assert code == 0, out
    assert "note: no SHA256SUMS.sig (signed by an earlier persistaudit)" in out
    allowed = folder.parent / "allowed"
    allowed.write_text(f"a {Path(f'{key}.pub').read_text()}")
    code, out = cli("verify", str(folder), "--allowed-signers", str(allowed))
    assert code == 1
    assert "INVALID: SHA256SUMS.sig: missing, so --allowed-signers has nothing to check" in out


def test_a_file_name_sha256sum_cannot_list_is_refused_before_signing(tmp_path: Path) -> None:
    folder = tmp_path / "report"
    folder.mkdir()
    shutil.copy(GOLDEN / "pass.results.json", folder / "results.json")
    (folder / "odd\\name.txt").write_text("x\n")
    assert cli("keygen", str(tmp_path / "key"))[0] == 0
    code, out = cli(
        "sign", str(folder), "--key", str(tmp_path / "key"), "--auditor", "A", "--role", "B"
    )
    assert code == 2
    assert "odd\\name.txt: a file name with a line break or a backslash" in out
    assert not (folder / "SHA256SUMS").exists()
    assert not (folder / "signature.json").exists()


def test_keygen_prints_an_allowed_signers_line(tmp_path: Path) -> None:
    code, out = cli("keygen", str(tmp_path / "key"))
    assert code == 0
    public = Path(f"{tmp_path / 'key'}.pub").read_text().split()
    line = out.splitlines()[1].split(": ", 1)[1]
    assert line == f'IDENTITY namespaces="persistaudit" {public[0]} {public[1]}'
    assert allowed_signers.parse_line(line, 1) is not None

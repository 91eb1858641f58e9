from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from persistaudit import signing
from persistaudit.cli import main
from tests.helpers import REPO

GOLDEN = REPO / "tests" / "golden"


def cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.output


@pytest.fixture
def signed(tmp_path: Path) -> tuple[Path, Path]:
    """A report folder made from golden results, signed with a fresh key."""
    folder = tmp_path / "report"
    (folder / "evidence").mkdir(parents=True)
    shutil.copy(GOLDEN / "fail.results.json", folder / "results.json")
    assert cli("report", str(folder / "results.json"), "-o", str(folder / "report.md"))[0] == 0
    (folder / "evidence" / "startup.log").write_text("notes-app: ready\n")
    (folder / "junit.xml").write_text("<testsuites/>\n")
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

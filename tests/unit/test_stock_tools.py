"""A signed report folder checks with stock tools alone: sha256sum -c and ssh-keygen -Y verify.

These run the real tools (openssh-client and coreutils; scripts/setup.sh installs them), and
skip only where a tool is truly absent, saying which.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from persistaudit import signing
from tests.helpers import REPO
from tests.unit.test_signing import cli, report_folder

GOLDEN = REPO / "tests" / "golden"
SSH_KEYGEN = shutil.which("ssh-keygen")
SHA256SUM = shutil.which("sha256sum")
needs_tools = pytest.mark.skipif(
    SSH_KEYGEN is None or SHA256SUM is None,
    reason="ssh-keygen (openssh-client) or sha256sum (coreutils) is not installed: "
    "run scripts/setup.sh tools",
)
IDENTITY = "ada@example.org"


@pytest.fixture
def signed(tmp_path: Path) -> tuple[Path, Path, Path]:
    """A report folder signed with a persistaudit key, and an allowed-signers file for it."""
    folder = report_folder(tmp_path)
    key = tmp_path / "auditor"
    code, out = cli("keygen", str(key))
    assert code == 0, out
    code, out = cli("sign", str(folder), "--key", str(key), "--auditor", "Ada", "--role", "QA")
    assert code == 0, out
    allowed = tmp_path / "allowed_signers"
    public = Path(f"{key}.pub").read_text().strip()
    allowed.write_text(f'{IDENTITY} namespaces="persistaudit" {public}\n')
    return folder, key, allowed


def sha256sum_check(folder: Path) -> subprocess.CompletedProcess[str]:
    assert SHA256SUM is not None
    return subprocess.run(
        [SHA256SUM, "--strict", "-c", "SHA256SUMS"],
        cwd=folder,
        capture_output=True,
        text=True,
        check=False,
    )


def ssh_verify(
    folder: Path, allowed: Path, identity: str = IDENTITY, namespace: str = "persistaudit"
) -> subprocess.CompletedProcess[str]:
    assert SSH_KEYGEN is not None
    command = [SSH_KEYGEN, "-Y", "verify", "-f", str(allowed), "-I", identity, "-n", namespace]
    with (folder / "SHA256SUMS").open("rb") as message:
        return subprocess.run(
            [*command, "-s", str(folder / "SHA256SUMS.sig")],
            stdin=message,
            capture_output=True,
            check=False,
        )


@needs_tools
def test_stock_tools_verify_a_signed_folder(signed: tuple[Path, Path, Path]) -> None:
    folder, key, allowed = signed
    sums = sha256sum_check(folder)
    assert sums.returncode == 0, sums.stdout + sums.stderr
    listed = [line.rsplit(": ", 1)[0] for line in sums.stdout.splitlines()]
    assert listed == sorted(
        ["evidence/startup.log", "junit.xml", "report.md", "results.json", "signature.json"]
    )
    good = ssh_verify(folder, allowed)
    assert good.returncode == 0, good.stderr
    fingerprint = signing.fingerprint(signing.load_public_key(Path(f"{key}.pub")))
    assert f'Good "persistaudit" signature for {IDENTITY}' in good.stdout.decode()
    assert fingerprint in good.stdout.decode()


@needs_tools
def test_the_signature_is_byte_for_byte_what_ssh_keygen_makes(
    signed: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    """persistaudit keygen's key signs with ssh-keygen too, and both make the same bytes."""
    folder, key, _ = signed
    assert SSH_KEYGEN is not None
    copy = tmp_path / "SHA256SUMS"
    shutil.copy(folder / "SHA256SUMS", copy)
    made = subprocess.run(
        [SSH_KEYGEN, "-Y", "sign", "-f", str(key), "-n", "persistaudit", str(copy)],
        capture_output=True,
        check=False,
    )
    assert made.returncode == 0, made.stderr
    assert Path(f"{copy}.sig").read_bytes() == (folder / "SHA256SUMS.sig").read_bytes()
    public = subprocess.run(
        [SSH_KEYGEN, "-y", "-f", str(key)], capture_output=True, text=True, check=True
    )
    assert public.stdout.split()[:2] == Path(f"{key}.pub").read_text().split()[:2]


@needs_tools
@pytest.mark.parametrize("name", ["report.md", "results.json", "evidence/startup.log"])
def test_stock_tools_and_verify_catch_a_changed_file(
    signed: tuple[Path, Path, Path], name: str
) -> None:
    folder, _, allowed = signed
    with (folder / name).open("ab") as fh:
        fh.write(b" ")
    sums = sha256sum_check(folder)
    assert sums.returncode == 1
    assert f"{name}: FAILED" in sums.stdout
    assert ssh_verify(folder, allowed).returncode == 0  # SHA256SUMS itself is intact
    code, out = cli("verify", str(folder), "--allowed-signers", str(allowed))
    assert code == 1
    assert f"INVALID: {name}: changed since it was signed" in out
    assert out.count(f"{name}:") == 1  # one line, though both signatures cover the file


@needs_tools
def test_an_edited_sums_file_fails_with_ssh_keygen_and_verify(
    signed: tuple[Path, Path, Path],
) -> None:
    """Re-listing a changed file in SHA256SUMS fools sha256sum, not the signature."""
    folder, _, allowed = signed
    (folder / "junit.xml").write_text("<testsuites failures='0'/>\n")
    text = (folder / "SHA256SUMS").read_text().splitlines()
    digest = signing.file_digest(folder / "junit.xml")
    (folder / "SHA256SUMS").write_text(
        "".join(
            f"{digest}  junit.xml\n" if line.endswith("  junit.xml") else line + "\n"
            for line in text
        )
    )
    assert sha256sum_check(folder).returncode == 0
    assert ssh_verify(folder, allowed).returncode != 0
    code, out = cli("verify", str(folder), "--allowed-signers", str(allowed))
    assert code == 1
    assert "INVALID: SHA256SUMS: changed since it was signed" in out
    assert "INVALID: junit.xml: changed since it was signed" in out  # signature.json says so


@needs_tools
def test_a_wrong_key_fails_with_ssh_keygen_and_verify(
    signed: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    folder, _, _ = signed
    other = tmp_path / "other"
    assert cli("keygen", str(other))[0] == 0
    allowed = tmp_path / "others_signers"
    allowed.write_text(f"{IDENTITY} {Path(f'{other}.pub').read_text()}")
    assert ssh_verify(folder, allowed).returncode != 0
    code, out = cli("verify", str(folder), "--allowed-signers", str(allowed))
    assert code == 1
    (line,) = [line for line in out.splitlines() if line.startswith("INVALID: ")]
    assert line.startswith("INVALID: SHA256SUMS.sig: signed by SHA256:")
    assert "does not allow" in line
    assert "the key is not listed" in line


@needs_tools
def test_another_namespace_or_identity_is_refused_by_both(
    signed: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    folder, key, allowed = signed
    assert ssh_verify(folder, allowed, identity="eve@example.org").returncode != 0
    code, out = cli(
        "verify", str(folder), "--allowed-signers", str(allowed), "--identity", "eve@example.org"
    )
    assert code == 1
    assert "not allow as 'eve@example.org'" in out
    git_only = tmp_path / "git_signers"
    git_only.write_text(f'{IDENTITY} namespaces="git" {Path(f"{key}.pub").read_text()}')
    assert ssh_verify(folder, git_only).returncode != 0
    code, out = cli("verify", str(folder), "--allowed-signers", str(git_only))
    assert code == 1
    assert "allows the key only for git" in out


@needs_tools
def test_a_folder_signed_by_ssh_keygen_alone_verifies(tmp_path: Path) -> None:
    """An auditor may make SHA256SUMS and its signature with stock tools; verify accepts it."""
    assert SSH_KEYGEN is not None
    assert SHA256SUM is not None
    folder = tmp_path / "report"
    folder.mkdir()
    (folder / "report.md").write_text("# report\n")
    (folder / "results.json").write_text("{}\n")
    sums = subprocess.run(
        [SHA256SUM, "report.md", "results.json"], cwd=folder, capture_output=True, check=True
    )
    (folder / "SHA256SUMS").write_bytes(sums.stdout)
    key = tmp_path / "id_ed25519"
    subprocess.run([SSH_KEYGEN, "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    subprocess.run(
        [SSH_KEYGEN, "-Y", "sign", "-f", str(key), "-n", "persistaudit", "SHA256SUMS"],
        cwd=folder,
        capture_output=True,
        check=True,
    )
    allowed = tmp_path / "allowed_signers"
    allowed.write_text(f"ada@example.org {Path(f'{key}.pub').read_text()}")
    code, out = cli("verify", str(folder), "--allowed-signers", str(allowed))
    assert code == 0, out
    assert 'SHA256SUMS.sig: a good "persistaudit" signature with SHA256:' in out
    assert "for ada@example.org" in out
    (folder / "notes.txt").write_text("added later\n")
    code, out = cli("verify", str(folder), "--allowed-signers", str(allowed))
    assert code == 1
    assert "INVALID: notes.txt: added after signing (not covered by the signature)" in out


@needs_tools
def test_the_readme_commands_check_a_signed_folder(signed: tuple[Path, Path, Path]) -> None:
    """The README's stock-tools block, run as written (bash), in a signed folder."""
    folder, _, allowed = signed
    readme = (REPO / "README.md").read_text()
    section = readme.split("#### Checking a signed report with stock tools")[1]
    script = section.split("```sh\n")[1].split("```")[0]
    script = script.replace("cd REPORT_DIR\n", "").replace("allowed_signers", str(allowed))
    bash = shutil.which("bash")
    assert bash is not None

    def run() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [bash, "-eo", "pipefail", "-c", script],
            cwd=folder,
            capture_output=True,
            text=True,
            check=False,
        )

    good = run()
    assert good.returncode == 0, good.stderr
    assert "report.md: OK" in good.stdout
    assert f'Good "persistaudit" signature for {IDENTITY}' in good.stdout
    assert good.stdout.splitlines()[-1].startswith("Good ")  # no file left unlisted
    (folder / "evidence" / "planted.log").write_text("later\n")
    added = run()
    assert added.stdout.splitlines()[-1] == "evidence/planted.log"

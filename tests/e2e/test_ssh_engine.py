"""An audit through a Docker context whose engine is ssh://: an sshd of the test's own on
127.0.0.1 in front of this machine's engine, reached with paramiko (the `ssh` extra).

Needs OpenSSH's sshd (Debian: openssh-server) and root (sshd's privilege separation); the
test's own HOME holds the client key, known_hosts and the context, so the user's are untouched.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from persistaudit import docker_context
from tests.helpers import NOTES_APP, REPO

pytestmark = pytest.mark.docker

SSHD = Path("/usr/sbin/sshd")
CONTEXT = "audit-over-ssh"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def ssh_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, int]]:
    """(HOME with a key, known_hosts and a Docker context on ssh://root@127.0.0.1:PORT, PORT)."""
    pytest.importorskip("paramiko")
    if not SSHD.is_file() or shutil.which("ssh-keygen") is None:
        pytest.skip("needs OpenSSH's sshd and ssh-keygen (Debian: openssh-server)")
    if os.geteuid() != 0:
        pytest.skip("needs root: the sshd logs in as root to reach the engine's socket")
    base = tmp_path_factory.mktemp("ssh")
    home = base / "home"
    (home / ".ssh").mkdir(parents=True)
    keygen = ["ssh-keygen", "-q", "-t", "ed25519", "-N", ""]
    subprocess.run([*keygen, "-f", str(base / "hostkey")], check=True)
    subprocess.run([*keygen, "-f", str(home / ".ssh" / "id_ed25519")], check=True)
    (base / "authorized_keys").write_text((home / ".ssh" / "id_ed25519.pub").read_text())
    port = free_port()
    (base / "sshd_config").write_text(
        f"ListenAddress 127.0.0.1\nPort {port}\nHostKey {base / 'hostkey'}\n"
        f"AuthorizedKeysFile {base / 'authorized_keys'}\nPidFile {base / 'sshd.pid'}\n"
        "PasswordAuthentication no\nKbdInteractiveAuthentication no\n"
        "PermitRootLogin prohibit-password\nStrictModes no\nUsePAM no\n"
        # The SDK multiplexes its requests over one ssh connection, a session each: OpenSSH's
        # default of 10 is too few for an audit (see the README).
        "MaxSessions 100\n"
    )
    host_key = " ".join((base / "hostkey.pub").read_text().split()[:2])
    (home / ".ssh" / "known_hosts").write_text(f"[127.0.0.1]:{port} {host_key}\n")
    Path("/run/sshd").mkdir(exist_ok=True)  # sshd's privilege separation folder
    subprocess.run(
        [str(SSHD), "-f", str(base / "sshd_config"), "-E", str(base / "sshd.log")], check=True
    )
    pid_file = base / "sshd.pid"
    deadline = time.monotonic() + 10
    while not pid_file.is_file() and time.monotonic() < deadline:
        time.sleep(0.05)
    # `docker context create audit-over-ssh --docker host=ssh://root@127.0.0.1:PORT`, by hand.
    meta = home / ".docker" / "contexts" / "meta" / docker_context.context_id(CONTEXT)
    meta.mkdir(parents=True)
    endpoint = {"Host": f"ssh://root@127.0.0.1:{port}", "SkipTLSVerify": False}
    (meta / "meta.json").write_text(
        json.dumps({"Name": CONTEXT, "Metadata": {}, "Endpoints": {"docker": endpoint}})
    )
    (home / ".docker" / "config.json").write_text(json.dumps({"currentContext": CONTEXT}))
    try:
        yield home, port
    finally:
        os.kill(int(pid_file.read_text()), signal.SIGTERM)


def test_an_audit_runs_on_the_current_context_s_ssh_engine(
    ssh_home: tuple[Path, int], tmp_path: Path
) -> None:
    home, port = ssh_home
    env = {k: v for k, v in os.environ.items() if k not in ("DOCKER_HOST", "DOCKER_CONTEXT")}
    env.update({"HOME": str(home), "DOCKER_CONFIG": str(home / ".docker")})
    out = tmp_path / "out"
    done = subprocess.run(
        [
            *(sys.executable, "-m", "persistaudit", "run", str(NOTES_APP / "audit.yaml")),
            *("--out", str(out), "-k", "startup or schema or restart_retention"),
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    doc = json.loads((out / "results.json").read_text())
    ran = {c["id"]: c["status"] for c in doc["checks"] if c["status"] != "skipped"}
    assert ran == {
        "fresh_install.startup": "passed",
        "fresh_install.schema": "passed",
        "restart.retention": "passed",
    }
    # The sshd saw the logins: the engine was reached through it, not the local socket.
    log = (home.parent / "sshd.log").read_text()
    assert f"Server listening on 127.0.0.1 port {port}" in log
    assert "Accepted publickey for root" in log

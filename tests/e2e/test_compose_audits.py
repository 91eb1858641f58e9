"""The compose driver on a real engine: notes-app through its compose file, good and defective.

Each audit runs through `persistaudit run` (run_audit checks that the process left nothing
on the engine, by its owner labels, and nothing in its temp dir).
"""

from __future__ import annotations

import json
import os
import re
import signal
import time
from collections.abc import Callable
from pathlib import Path

import docker
import pytest
import yaml

from tests.e2e.conftest import Audit, leftovers, persistaudit, spawn
from tests.e2e.test_demo_audits import ALL_CHECKS
from tests.helpers import REPO

pytestmark = pytest.mark.docker

COMPOSE_APP = REPO / "fixtures" / "targets" / "notes-app-compose"

# Each planted defect, caught by the same checks as with the image driver
# (tests/e2e/test_demo_audits.py, test_hostile_targets.py, robustness/test_failure_categories.py).
DEFECTS = {
    "missing-tables": (1, {"fresh_install.schema": "failed"}),
    "ephemeral-db": (1, {"volume.mount": "failed", "recreate.retention": "failed"}),
    "no-wal": (1, {"fresh_install.journal_mode": "failed"}),
    "no-check": (1, {"fresh_install.schema": "failed", "fresh_install.constraints": "failed"}),
    "bad-json": (1, {"fresh_install.constraints": "failed"}),
    "fk-orphans": (1, {"fresh_install.foreign_keys": "failed"}),
    "hostile-schema": (
        1,
        {"fresh_install.schema": "failed", "fresh_install.constraints": "blocked"},
    ),
    "canary-writes-fail": (3, {"restart.retention": "blocked", "recreate.retention": "blocked"}),
    "license-blocker": (3, dict.fromkeys(ALL_CHECKS - {"volume.mount"}, "blocked")),
}


def tree(folder: Path) -> dict[str, tuple[int, int]]:
    """Every path under folder with its size and mtime (ns), the folder itself included."""
    paths = [folder, *folder.rglob("*")]
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns) for p in paths}


def test_the_good_compose_service_passes_every_check_and_leaves_the_bind_folder_alone(
    run_audit: Callable[..., Audit],
) -> None:
    exports = COMPOSE_APP / "exports"
    before = tree(exports)
    audit = run_audit(COMPOSE_APP / "audit.yaml")
    assert audit.code == 0, audit.stderr
    assert audit.statuses() == dict.fromkeys(ALL_CHECKS, "passed")
    assert tree(exports) == before  # no file written, no mtime changed
    target = audit.results["target"]
    assert target["driver"] == "compose"
    assert target["service"] == "notes"
    # Host paths under the config's folder are relative to the folder of results.json (or to
    # the config's folder, where the two share only /: then "./compose.yaml").
    assert not target["compose_file"].startswith("/")
    assert re.fullmatch(r"(\.\./\S*/notes-app-compose|\.)/compose\.yaml", target["compose_file"])
    assert target["project"].startswith("persistaudit-notes-app-compose-")
    assert target["image"] == "persistaudit/notes-app-compose-notes:audit"
    assert target["image_id"].startswith("sha256:")
    assert target["volume"] == f"{target['project']}_notes-data"
    # Re-created by compose down (volumes kept) and up: every canary is still there.
    assert "20 canary records read back" in audit.check("recreate.retention")["summary"]
    mount = audit.check("volume.mount")
    declared = next(e for e in mount["evidence"] if "compose model declares" in e["title"])
    assert "volume    notes-data -> /data (rw)" in declared["content"]
    assert re.search(
        r"bind      (\.\./\S*/notes-app-compose|\.)/exports -> /exports \(rw\); this run mounted ",
        declared["content"],
    )
    assert re.search(r"(?<![\w.])" + re.escape(str(exports)), declared["content"]) is None
    # Reproducible: the compose service's container as the engine ran it, and the commands.
    reproduce = audit.results["reproduce"]
    assert reproduce["container"]["name"].startswith(target["project"])
    assert reproduce["container"]["image_id"] == target["image_id"]
    exports_mount = next(
        m for m in reproduce["container"]["mounts"] if m["destination"] == "/exports"
    )
    assert exports_mount["source"] != str(exports)  # redirected to the run's own folder
    assert reproduce["run_command"] == ""  # a compose service is reproduced by compose
    assert reproduce["commands"]["restart"].endswith(" restart notes")
    assert "docker compose -p persistaudit-notes-app-compose-" in audit.stderr
    assert " restart notes" in audit.stderr
    assert "down (volumes kept), then up" in audit.stderr


@pytest.mark.parametrize("defect", sorted(DEFECTS))
def test_each_planted_defect_is_caught_by_its_check(
    run_audit: Callable[..., Audit], defect: str
) -> None:
    code, expected = DEFECTS[defect]
    audit = run_audit(COMPOSE_APP / "defects" / f"{defect}.yaml")
    assert audit.code == code, audit.stderr
    assert audit.results["target"]["driver"] == "compose"
    statuses = audit.statuses()
    assert {k: v for k, v in statuses.items() if v != "passed"} == expected, statuses


def test_ephemeral_db_names_the_container_layer(run_audit: Callable[..., Audit]) -> None:
    audit = run_audit(COMPOSE_APP / "defects" / "ephemeral-db.yaml")
    assert "/app/state is on the container layer" in audit.check("volume.mount")["summary"]
    assert "20 of 20 canary records lost" in audit.check("recreate.retention")["summary"]


def test_license_blocker_quotes_the_log_of_its_restart_loop(
    run_audit: Callable[..., Audit],
) -> None:
    startup = run_audit(COMPOSE_APP / "defects" / "license-blocker.yaml").check(
        "fresh_install.startup"
    )
    assert "restarts in a loop" in startup["summary"]
    assert "last exit code 78" in startup["summary"]
    logs = next(e for e in startup["evidence"] if e["kind"] == "log")["content"]
    assert "licence key missing: notes-app requires NOTES_LICENSE_KEY" in logs


def compose_config(tmp_path: Path, compose: dict[str, object], **changes: object) -> Path:
    """The good compose audit config over another compose file, written in tmp_path."""
    compose = {"volumes": {"notes-data": {}}, **compose}
    (tmp_path / "compose.yaml").write_text(yaml.safe_dump(compose))
    config = yaml.safe_load((COMPOSE_APP / "audit.yaml").read_text())
    config["compose"]["file"] = "compose.yaml"
    config["expect"]["manifest"] = str(REPO / "expected" / "notes-app.yaml")
    config.update(changes)
    path = tmp_path / "audit.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def notes_service(**extra: object) -> dict[str, object]:
    return {
        "build": {"context": str(REPO / "fixtures" / "targets" / "notes-app")},
        "environment": {"NOTES_DB_PATH": "/data/notes.db"},
        "volumes": ["notes-data:/data"],
        **extra,
    }


def test_an_invalid_compose_file_is_one_line_naming_it_and_exit_2(tmp_path: Path) -> None:
    config = compose_config(
        tmp_path, {"services": {"notes": {**notes_service(), "volumes": "not a list"}}}
    )
    proc = persistaudit("run", str(config), "--out", str(tmp_path / "out"))
    assert proc.returncode == 2, proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith(f"persistaudit: error: {tmp_path / 'compose.yaml'}: invalid compose")
    assert "volumes" in last
    assert "Traceback" not in proc.stderr


def test_a_service_not_in_the_compose_file_is_exit_2(tmp_path: Path) -> None:
    config = compose_config(tmp_path, {"services": {"web": notes_service()}})
    proc = persistaudit("run", str(config), "--out", str(tmp_path / "out"))
    assert proc.returncode == 2, proc.stderr
    assert "compose.service: no service 'notes' in " in proc.stderr
    assert "(its services: web)" in proc.stderr


def test_a_wal_database_on_an_nfs_volume_is_flagged_from_the_model(
    run_audit: Callable[..., Audit], tmp_path: Path
) -> None:
    """The engine creates an NFS-typed volume lazily; mounting it fails at the start (no
    server), so the start is BLOCKED, and the model alone shows the WAL-on-NFS finding."""
    nfs = {"type": "nfs", "o": "addr=127.0.0.1,nolock,soft,timeo=5,retrans=0", "device": ":/x"}
    config = compose_config(
        tmp_path,
        {"services": {"notes": notes_service()}, "volumes": {"notes-data": {"driver_opts": nfs}}},
        name="notes-app-compose-nfs",
    )
    audit = run_audit(config, "-k", "startup or mount")
    assert audit.code == 1, audit.stderr
    startup = audit.check("fresh_install.startup")
    assert startup["status"] == "blocked"
    assert "could not start" in startup["summary"]
    state = next(e for e in startup["evidence"] if e["title"] == "Container state")
    assert "failed to mount local volume" in state["content"]  # compose's stderr tail
    mount = audit.check("volume.mount")
    assert mount["status"] == "failed"
    assert (
        "/data/notes.db is a WAL database on a network filesystem (volume notes-data has "
        "driver_opts type=nfs)" in mount["summary"]
    )
    assert any("judged from the compose model" in e["title"] for e in mount["evidence"])


def test_a_healthcheck_given_in_the_config_readies_the_compose_service(
    run_audit: Callable[..., Audit], tmp_path: Path
) -> None:
    probe = "import urllib.request as u; u.urlopen('http://127.0.0.1:{}/health', timeout=1)"
    (tmp_path / "good").mkdir()
    good = compose_config(
        tmp_path / "good",
        {"services": {"notes": notes_service()}},
        name="notes-app-compose-health",
        readiness={
            "healthcheck": {"test": ["CMD", "python3", "-c", probe.format(8080)], "interval": 0.5},
            "timeout": 20,
        },
    )
    audit = run_audit(good, "-k", "startup or restart")
    assert audit.code == 0, audit.stderr
    (tmp_path / "bad").mkdir()
    bad = compose_config(
        tmp_path / "bad",
        {"services": {"notes": notes_service()}},
        name="notes-app-compose-unhealthy",
        readiness={
            "healthcheck": {"test": ["CMD", "python3", "-c", probe.format(8081)], "interval": 0.5},
            "timeout": 5,
        },
    )
    audit = run_audit(bad, "-k", "startup")
    assert audit.code == 3, audit.stderr
    startup = audit.check("fresh_install.startup")
    assert "waiting for healthcheck reports healthy" in startup["summary"]
    probes = next(e for e in startup["evidence"] if "State.Health.Log" in e["title"])
    assert "Connection refused" in probes["content"]


def test_healthcheck_true_without_one_in_the_service_or_image_is_exit_2(tmp_path: Path) -> None:
    config = compose_config(
        tmp_path,
        {"services": {"notes": notes_service()}},
        readiness={"healthcheck": True},
    )
    proc = persistaudit("run", str(config), "--out", str(tmp_path / "out"))
    assert proc.returncode == 2, proc.stderr
    assert "readiness.healthcheck: service notes of " in proc.stderr
    assert "has no healthcheck" in proc.stderr


@pytest.mark.parametrize("marker", ["fresh volumes", "down (volumes kept)"])
def test_nothing_is_left_after_sigterm_mid_run(
    engine: docker.DockerClient, tmp_path: Path, marker: str
) -> None:
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    proc = spawn(
        "-m",
        "persistaudit",
        "run",
        str(COMPOSE_APP / "audit.yaml"),
        "--out",
        str(tmp_path / "out"),
        tmpdir=tmpdir,
    )
    lines = []
    assert proc.stdout is not None
    deadline = time.monotonic() + 120
    for line in proc.stdout:
        lines.append(line.rstrip())
        if marker in line:
            proc.send_signal(signal.SIGTERM)
            break
        assert time.monotonic() < deadline, "\n".join(lines)
    lines += proc.stdout.read().splitlines()
    code = proc.wait(timeout=60)
    assert code == 143, "\n".join(lines)
    assert "interrupted by SIGTERM" in lines[-1]
    assert leftovers(engine, proc.pid) == []
    assert list(tmpdir.iterdir()) == []  # the model, the bind folders: all gone
    assert not (tmp_path / "out" / "results.json").exists()


def test_the_compose_files_env_is_not_changed_by_the_users_shell(
    run_audit: Callable[..., Audit], monkeypatch: pytest.MonkeyPatch
) -> None:
    """COMPOSE_PROJECT_NAME or COMPOSE_PROFILES in the user's shell change nothing."""
    monkeypatch.setenv("COMPOSE_PROJECT_NAME", "users-project")
    monkeypatch.setenv("COMPOSE_PROFILES", "other")
    audit = run_audit(COMPOSE_APP / "audit.yaml", "-k", "startup")
    assert audit.code == 0, audit.stderr
    assert audit.results["target"]["project"].startswith("persistaudit-notes-app-compose-")
    assert json.dumps(audit.results).count("users-project") == 0
    assert os.environ["COMPOSE_PROJECT_NAME"] == "users-project"


def test_what_the_service_writes_to_a_bind_mount_never_reaches_the_users_folder(
    engine: docker.DockerClient,
) -> None:
    """The service writes to its bind mount; the user's ./exports does not change."""
    from persistaudit import engine as engine_module
    from persistaudit.config import load_config
    from persistaudit.runtime import runtime_for

    exports = COMPOSE_APP / "exports"
    before = tree(exports)
    runtime = runtime_for(
        load_config(COMPOSE_APP / "audit.yaml"), engine, engine_module.new_run_id()
    )
    try:
        runtime.start()
        code, _ = runtime.container.exec(
            ["sh", "-c", "echo x > /exports/written && touch /exports"]
        )
        assert code == 0
        binds = [m for m in runtime.container.mounts() if m.destination == "/exports"]
        assert [m.type for m in binds] == ["bind"]
        assert binds[0].source != str(exports)
        assert tree(exports) == before
    finally:
        removal = runtime.close()
    assert not removal.left
    assert tree(exports) == before

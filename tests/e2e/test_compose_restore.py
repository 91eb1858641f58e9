"""The compose driver's restore on a real engine: a project of the run's own, labelled, on
ports of its own, seeded with files that keep the owner asked for, and removed by close()
even when compose itself can no longer bring it down."""

from __future__ import annotations

from pathlib import Path

import docker
import pytest

from persistaudit import engine as engine_module
from persistaudit.config import load_config
from persistaudit.engine import LABEL_RUN
from persistaudit.runtime import ComposeRuntime, runtime_for
from persistaudit.runtime.compose_restore import PROJECT_LABEL
from persistaudit.runtime.restore import FileOwner
from tests.helpers import REPO

pytestmark = pytest.mark.docker

COMPOSE_APP = REPO / "fixtures" / "targets" / "notes-app-compose"
STAT = "import os; s = os.stat('/data/extra.txt'); print(s.st_uid, s.st_gid, oct(s.st_mode))"


def project_resources(engine: docker.DockerClient, project: str) -> list[object]:
    selector: dict[str, str | list[str] | bool] = {"label": f"{PROJECT_LABEL}={project}"}
    return [
        *engine.containers.list(all=True, filters=selector),
        *engine.volumes.list(filters=selector),
        *engine.networks.list(filters=selector),
    ]


def test_the_restore_is_a_labelled_project_of_its_own_and_close_removes_it(
    engine: docker.DockerClient, tmp_path: Path
) -> None:
    run_id = engine_module.new_run_id()
    runtime = runtime_for(load_config(COMPOSE_APP / "audit.yaml"), engine, run_id)
    assert isinstance(runtime, ComposeRuntime)
    try:
        runtime.start()
        extra = tmp_path / "extra.txt"
        extra.write_text("restored")
        restored = runtime.restore(
            {"/data/extra.txt": extra}, tmp_path, {"/data/extra.txt": FileOwner(1234, 4321, 0o600)}
        )
        project = f"{runtime.project}-restore"
        assert restored.container is not None
        assert restored.name.startswith(project)
        # The compose file publishes 8080:8080: each project gets a port of its own.
        assert restored.container.url(8080, "/") != runtime.container.url(8080, "/")
        code, output = restored.container.exec(["python3", "-c", STAT])
        assert (code, output.split()) == (0, ["1234", "4321", "0o100600"])
        made = project_resources(engine, project)
        assert len(made) >= 3  # its container, volume and network
        for resource in made:
            labels = resource.attrs.get("Labels") or resource.attrs["Config"]["Labels"]  # type: ignore[attr-defined]
            assert labels[LABEL_RUN] == run_id, resource
        # Compose cannot bring it down (its model is gone): close() removes it by its label.
        (runtime.model_file.parent / "restore" / "compose.json").unlink()
        removed = restored.close()
        assert any(r.startswith("container ") for r in removed), removed
        assert restored.close() == removed  # idempotent
        assert project_resources(engine, project) == []
        assert runtime.container.state().status == "running"  # the audited project is kept
    finally:
        removal = runtime.close()
    assert not removal.left

"""Clean-up against the engine's races: unlabelled re-created volumes, 409s, a deadline."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import docker
import docker.errors
import pytest

from persistaudit import cleanup
from persistaudit import engine as labels

pytestmark = pytest.mark.docker

BASE = "persistaudit/base-python:bookworm"  # set-up makes it; nothing is started from it


@pytest.fixture
def run(engine: docker.DockerClient) -> Iterator[tuple[str, str]]:
    """A run id and its name prefix; whatever is left named by it is removed afterwards."""
    run_id = labels.new_run_id()
    prefix = labels.run_prefix("pa-race", run_id)
    yield run_id, prefix
    for container in engine.containers.list(all=True, filters={"name": run_id}):
        container.remove(force=True)
    for volume in engine.volumes.list(filters={"name": run_id}):
        volume.remove(force=True)


def holder(
    engine: docker.DockerClient, name: str, volume: str
) -> docker.models.containers.Container:
    """A container, created and never started, that holds a volume (409 "in use")."""
    return engine.containers.create(
        BASE,
        ["true"],
        name=name,
        volumes={volume: {"bind": "/data", "mode": "rw"}},
        labels=labels.owner_labels(),
    )


def test_a_volume_the_engine_recreated_without_labels_is_found_by_its_name(
    engine: docker.DockerClient, run: tuple[str, str]
) -> None:
    """A container created while its volume was being removed re-creates it, unlabelled."""
    run_id, prefix = run
    engine.volumes.create(prefix)  # no labels, as the engine re-creates it
    holder_labels = labels.labels(run_id, "pa-race")
    engine.containers.create(
        BASE,
        ["true"],
        name=f"{prefix}-1",
        volumes={prefix: {"bind": "/data"}},
        labels=holder_labels,
    )
    not_ours = engine.volumes.create(f"{prefix}0")  # another run's id would differ entirely

    removal = cleanup.remove_run(run_id, prefix)

    assert removal.removed == [f"container {prefix}-1", f"volume {prefix}"]
    assert removal.left == {}
    assert [v.name for v in engine.volumes.list(filters={"name": prefix})] == [not_ours.name]


def test_a_volume_in_use_is_retried_until_it_is_free(
    engine: docker.DockerClient, run: tuple[str, str]
) -> None:
    run_id, prefix = run
    engine.volumes.create(prefix, labels=labels.labels(run_id, "pa-race"))
    busy = holder(engine, f"pa-holder-{run_id}", prefix)  # not the run's: only its volume
    release = threading.Timer(1.0, busy.remove, kwargs={"force": True})
    release.start()
    try:
        removal = cleanup.remove_run(run_id, prefix, deadline_s=20)
    finally:
        release.join()
    assert removal.removed == [f"volume {prefix}"]
    assert removal.left == {}
    assert engine.volumes.list(filters={"label": f"{labels.LABEL_RUN}={run_id}"}) == []


def test_what_cannot_be_removed_by_the_deadline_is_named_in_one_line(
    engine: docker.DockerClient, run: tuple[str, str]
) -> None:
    run_id, prefix = run
    engine.volumes.create(prefix, labels=labels.labels(run_id, "pa-race"))
    holder(engine, f"pa-holder-{run_id}", prefix)

    removal = cleanup.remove_run(run_id, prefix, deadline_s=1.0)

    assert list(removal.left) == [f"volume {prefix}"]
    assert "in use" in removal.left[f"volume {prefix}"]
    warning = removal.warning()
    assert "\n" not in warning
    assert warning.startswith(f"warning: could not remove volume {prefix} (")
    assert f"volume {prefix}" in cleanup.left_behind()

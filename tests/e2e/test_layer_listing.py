"""The container layer listed from the host (upper_dir) is what `docker diff` lists."""

from __future__ import annotations

from collections.abc import Iterator

import docker
import pytest
from docker.models.containers import Container

from persistaudit import upper_dir
from persistaudit.runtime.base import DockerContainer
from tests.e2e.conftest import sleeping_container

pytestmark = pytest.mark.docker

# Added files and folders, a deletion, a link, a fifo, a file on the volume, scratch in /tmp.
WRITES = (
    "mkdir -p /var/lib/app/state && echo x > /var/lib/app/state/app.db"
    " && rm /etc/debian_version && ln -s /etc/passwd /root/link && mkfifo /root/fifo"
    " && echo y > /data/on-the-volume.db && mkdir /tmp/t && touch /tmp/t/f"
    " && mkdir -p /srv/gone/inner && rm -r /srv/gone"
)


@pytest.fixture
def container(engine: docker.DockerClient) -> Iterator[Container]:
    with sleeping_container(engine, "pa-layer", WRITES) as made:
        yield made


def test_the_host_listing_is_docker_diffs(
    container: Container, monkeypatch: pytest.MonkeyPatch
) -> None:
    handle = DockerContainer(container)
    base_url = str(container.client.api.base_url)  # type: ignore[union-attr]
    if upper_dir.upper_dir(handle.attrs, base_url) is None:
        pytest.skip("the engine's layer folders cannot be read here (not root, or not local)")
    from_host = handle.changed_files()
    assert handle.layer_listed_by == upper_dir.FROM_HOST  # what the evidence says
    monkeypatch.setenv("PERSISTAUDIT_LAYER_FROM_ENGINE", "1")
    from_engine = handle.changed_files()
    assert handle.layer_listed_by == upper_dir.DOCKER_DIFF
    assert from_host == from_engine
    assert "/var/lib/app/state/app.db" in from_host
    assert "/root/link" in from_host
    assert "/etc/debian_version" not in from_host  # deleted
    assert "/data/on-the-volume.db" not in from_host  # on the volume, not in the layer
    assert not any(p.startswith("/srv/gone") for p in from_host)

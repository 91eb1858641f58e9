"""The engine is chosen as the docker CLI chooses it: DOCKER_HOST, DOCKER_CONTEXT, then
`docker context use` (currentContext), then the local socket; messages name that engine."""

from __future__ import annotations

import json
from pathlib import Path

import docker.errors
import pytest

from persistaudit import docker_context, engine
from persistaudit.docker_context import Endpoint, resolve
from persistaudit.exceptions import EngineUnavailable


def store_context(folder: Path, name: str, host: str, *, tls: bool = False) -> Path:
    """A context as `docker context create NAME --docker host=HOST` stores it."""
    meta = folder / "contexts" / "meta" / docker_context.context_id(name)
    meta.mkdir(parents=True)
    doc = {"Name": name, "Metadata": {}, "Endpoints": {"docker": {"Host": host}}}
    (meta / "meta.json").write_text(json.dumps(doc))
    if tls:
        files = folder / "contexts" / "tls" / docker_context.context_id(name) / "docker"
        files.mkdir(parents=True)
        for name_ in docker_context.TLS_FILES:
            (files / name_).write_text("-----BEGIN-----\n")
    return meta / "meta.json"


def use(folder: Path, name: str) -> None:
    """What `docker context use NAME` writes."""
    (folder / "config.json").write_text(json.dumps({"auths": {}, "currentContext": name}))


def test_the_cli_stores_a_context_under_the_sha256_of_its_name() -> None:
    # `docker context create remote` makes contexts/meta/<this>/meta.json
    assert docker_context.context_id("remote") == (
        "b71199ebd070b36beab7317920c2c2f1d777df8d05e5527d8458fda57cb17a7a"
    )


def test_without_anything_set_it_is_the_local_socket(tmp_path: Path) -> None:
    found = resolve({"DOCKER_CONFIG": str(tmp_path)})
    assert found == Endpoint("unix:///var/run/docker.sock", "default", "default")
    assert str(found) == "unix:///var/run/docker.sock (context default)"


def test_docker_context_use_is_honoured(tmp_path: Path) -> None:
    store_context(tmp_path, "remote", "tcp://build-box:2375")
    use(tmp_path, "remote")
    found = resolve({"DOCKER_CONFIG": str(tmp_path)})
    assert (found.host, found.context) == ("tcp://build-box:2375", "remote")
    assert str(found) == (
        f"tcp://build-box:2375 (context remote, from currentContext in {tmp_path}/config.json)"
    )


def test_docker_context_beats_the_current_context(tmp_path: Path) -> None:
    store_context(tmp_path, "remote", "tcp://build-box:2375")
    store_context(tmp_path, "ci", "ssh://ci@runner")
    use(tmp_path, "remote")
    found = resolve({"DOCKER_CONFIG": str(tmp_path), "DOCKER_CONTEXT": "ci"})
    assert (found.host, found.context, found.chosen_by) == (
        "ssh://ci@runner",
        "ci",
        "DOCKER_CONTEXT",
    )


def test_docker_host_beats_every_context(tmp_path: Path) -> None:
    store_context(tmp_path, "remote", "tcp://build-box:2375")
    use(tmp_path, "remote")
    env = {"DOCKER_CONFIG": str(tmp_path), "DOCKER_CONTEXT": "remote", "DOCKER_HOST": "tcp://x:1"}
    found = resolve(env)
    assert (found.host, found.context, str(found)) == (
        "tcp://x:1",
        "default",
        "tcp://x:1 (DOCKER_HOST)",
    )


def test_the_default_context_by_name_is_the_local_socket(tmp_path: Path) -> None:
    use(tmp_path, "default")
    assert resolve({"DOCKER_CONFIG": str(tmp_path)}).host == "unix:///var/run/docker.sock"
    env = {"DOCKER_CONFIG": str(tmp_path), "DOCKER_CONTEXT": "default"}
    assert resolve(env).host == "unix:///var/run/docker.sock"


def test_home_docker_is_the_config_folder_without_docker_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    folder = tmp_path / ".docker"
    folder.mkdir()
    store_context(folder, "remote", "tcp://build-box:2375")
    use(folder, "remote")
    assert resolve({}).host == "tcp://build-box:2375"


def test_an_unreadable_config_file_is_the_default_context_as_for_the_cli(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{not json")
    assert resolve({"DOCKER_CONFIG": str(tmp_path)}).context == "default"


def test_a_context_that_does_not_exist_is_one_line_naming_it_never_another_engine(
    tmp_path: Path,
) -> None:
    with pytest.raises(EngineUnavailable) as caught:
        resolve({"DOCKER_CONFIG": str(tmp_path), "DOCKER_CONTEXT": "gone"})
    message = str(caught.value)
    assert message.startswith("Docker context 'gone' (DOCKER_CONTEXT) does not exist: no ")
    assert "docker context ls" in message
    assert "\n" not in message


def test_a_context_without_a_docker_endpoint_is_refused(tmp_path: Path) -> None:
    meta = store_context(tmp_path, "odd", "tcp://x:1")
    meta.write_text(json.dumps({"Name": "odd", "Endpoints": {}}))
    use(tmp_path, "odd")
    with pytest.raises(EngineUnavailable, match="has no docker endpoint"):
        resolve({"DOCKER_CONFIG": str(tmp_path)})


def test_a_context_s_tls_files_are_found(tmp_path: Path) -> None:
    store_context(tmp_path, "secure", "tcp://build-box:2376", tls=True)
    found = resolve({"DOCKER_CONFIG": str(tmp_path), "DOCKER_CONTEXT": "secure"})
    assert found.tls_dir == (
        tmp_path / "contexts" / "tls" / docker_context.context_id("secure") / "docker"
    )


def test_connect_tries_the_context_s_engine_and_names_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store_context(tmp_path, "remote", "unix:///nonexistent/docker.sock")
    use(tmp_path, "remote")
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    monkeypatch.delenv("DOCKER_CONTEXT", raising=False)
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
    with pytest.raises(EngineUnavailable) as caught:
        engine.connect()
    assert str(caught.value).startswith(
        "no Docker engine answers at unix:///nonexistent/docker.sock (context remote, from "
        f"currentContext in {tmp_path}/config.json): no socket there. Hint: "
    )
    assert "make" not in str(caught.value)  # a pip user has no Makefile


def test_a_context_client_goes_to_the_context_s_address(tmp_path: Path) -> None:
    store_context(tmp_path, "remote", "tcp://127.0.0.1:9")  # discard: nothing answers
    found = resolve({"DOCKER_CONFIG": str(tmp_path), "DOCKER_CONTEXT": "remote"})
    with pytest.raises(docker.errors.DockerException, match="port=9"):
        engine.client_for(found)


def test_an_ssh_engine_without_paramiko_says_which_extra_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(engine.importlib.util, "find_spec", lambda name: None)
    found = Endpoint("ssh://me@build-box", "default", "DOCKER_HOST")
    with pytest.raises(EngineUnavailable) as caught:
        engine.client_for(found)
    assert str(caught.value) == (
        "cannot reach the engine at ssh://me@build-box (DOCKER_HOST): an ssh:// engine needs "
        "paramiko: pip install 'persistaudit[ssh]'"
    )


def test_an_ssh_engine_with_paramiko_goes_through_the_sdk_s_ssh_transport(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("paramiko")
    store_context(tmp_path, "remote", "ssh://nobody@127.0.0.1:1")  # nothing listens on 1
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    monkeypatch.setenv("DOCKER_CONTEXT", "remote")
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
    with pytest.raises(EngineUnavailable) as caught:
        engine.connect()
    assert str(caught.value).startswith(
        "no Docker engine answers at ssh://nobody@127.0.0.1:1 (context remote, from "
        "DOCKER_CONTEXT): no ssh server answers. Hint: "
    )


@pytest.mark.parametrize(
    ("host", "local"),
    [("unix:///var/run/docker.sock", True), ("tcp://127.0.0.1:2375", True), ("ssh://a@b", False)],
)
def test_is_local_reads_the_current_context_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, host: str, local: bool
) -> None:
    store_context(tmp_path, "chosen", host)
    use(tmp_path, "chosen")
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    monkeypatch.delenv("DOCKER_CONTEXT", raising=False)
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
    assert engine.is_local() is local


def test_testcontainers_client_is_pointed_at_a_context_s_engine(tmp_path: Path) -> None:
    store_context(tmp_path, "secure", "tcp://build-box:2376", tls=True)
    found = resolve({"DOCKER_CONFIG": str(tmp_path), "DOCKER_CONTEXT": "secure"})
    assert engine.sdk_environment(found) == {
        "DOCKER_HOST": "tcp://build-box:2376",
        "DOCKER_CERT_PATH": str(found.tls_dir),
        "DOCKER_TLS_VERIFY": "1",
    }
    # DOCKER_HOST and the local socket: the SDK reads the environment itself.
    assert engine.sdk_environment(Endpoint("tcp://x:1", "default", "DOCKER_HOST")) is None


@pytest.mark.parametrize(
    ("host", "published"),
    [
        ("unix:///var/run/docker.sock", "127.0.0.1"),
        ("tcp://127.0.0.1:2375", "127.0.0.1"),
        ("tcp://build-box:2375", "build-box"),
        ("ssh://me@build-box", "build-box"),
    ],
)
def test_published_ports_are_on_the_context_s_host(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, host: str, published: str
) -> None:
    store_context(tmp_path, "chosen", host)
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    monkeypatch.setenv("DOCKER_CONTEXT", "chosen")
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
    assert engine.published_host() == published

"""The compose model a run executes: the author's, made safe and the run's own. No Docker:
the input is what `docker compose config --format json` prints."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from persistaudit.config import HealthcheckSpec
from persistaudit.runtime.base import DeclaredMount
from persistaudit.runtime.compose_model import has_healthcheck, image_tag, rewrite

LABELS = {"io.persistaudit.run": "r1", "io.persistaudit.owner.pid": "42"}
PROJECT = "persistaudit-notes-r1"


def model(user: Path) -> dict[str, Any]:
    """A resolved model as compose prints it, with the user's folder at `user`."""
    return {
        "name": "ignored",
        "services": {
            "notes": {
                "build": {"context": str(user / "app"), "dockerfile": "Dockerfile"},
                "image": "myorg/notes:latest",
                "container_name": "notes",
                "environment": {"NOTES_DB_PATH": "/data/notes.db", "MODE": "prod"},
                "labels": {"team": "x"},
                "networks": {"default": None},
                "ports": [
                    {"mode": "ingress", "target": 8080, "published": "8080", "protocol": "tcp"},
                    {"target": 9000, "published": "9000", "host_ip": "0.0.0.0", "protocol": "tcp"},
                ],
                "profiles": ["app"],
                "volumes": [
                    {"type": "volume", "source": "data", "target": "/data", "volume": {}},
                    {"type": "bind", "source": str(user / "exports"), "target": "/exports"},
                    {"type": "bind", "source": str(user / "conf.ini"), "target": "/etc/conf.ini"},
                    {
                        "type": "bind",
                        "source": str(user / "ro"),
                        "target": "/ro",
                        "read_only": True,
                    },
                    {"type": "bind", "source": str(user / "missing"), "target": "/missing"},
                    {"type": "volume", "target": "/cache", "volume": {}},
                    {"type": "tmpfs", "target": "/tmp/t"},
                ],
            },
            "cache": {"image": "redis:7", "ports": [{"target": 6379, "published": "6379"}]},
        },
        "volumes": {
            "data": {"name": "fixed-name"},
            "shared": {"name": "users-volume", "external": True},
        },
        "networks": {"default": {"name": "ignored_default"}, "outer": {"external": True}},
    }


@pytest.fixture
def user(tmp_path: Path) -> Path:
    folder = tmp_path / "user"
    (folder / "exports").mkdir(parents=True)
    (folder / "exports" / "keep.txt").write_text("the user's")
    (folder / "ro").mkdir()
    (folder / "conf.ini").write_text("[conf]\n")
    return folder


def run(user: Path, scratch: Path, **kwargs: Any) -> Any:
    return rewrite(
        model(user),
        service="notes",
        project=PROJECT,
        labels=LABELS,
        scratch=scratch,
        **kwargs,
    )


def test_every_service_volume_and_network_is_labelled_and_named_by_the_run(
    user: Path, tmp_path: Path
) -> None:
    out = run(user, tmp_path / "scratch").model
    assert out["name"] == PROJECT
    for service in out["services"].values():
        assert LABELS.items() <= service["labels"].items()
    assert out["services"]["notes"]["labels"]["team"] == "x"  # the author's are kept
    assert {k: v["name"] for k, v in out["volumes"].items()} == {
        "data": f"{PROJECT}_data",  # never a fixed name another run or the user has
        "shared": f"{PROJECT}_shared",
    }
    assert {k: v["name"] for k, v in out["networks"].items()} == {
        "default": f"{PROJECT}_default",
        "outer": f"{PROJECT}_outer",
    }
    for item in [*out["volumes"].values(), *out["networks"].values()]:
        assert item["labels"] == LABELS
        assert "external" not in item


def test_an_external_volume_is_replaced_by_a_fresh_one(user: Path, tmp_path: Path) -> None:
    result = run(user, tmp_path / "scratch")
    assert "external volume shared replaced by a fresh volume of the run" in result.notes
    assert result.volumes == [f"{PROJECT}_data", f"{PROJECT}_shared"]


def test_published_ports_are_ephemeral_on_loopback(user: Path, tmp_path: Path) -> None:
    out = run(user, tmp_path / "scratch", ports=[8080, 8081]).model["services"]
    assert out["notes"]["ports"] == [
        {"mode": "ingress", "target": 8080, "protocol": "tcp", "host_ip": "127.0.0.1"},
        {"target": 9000, "host_ip": "127.0.0.1", "protocol": "tcp"},
        {"target": 8081, "protocol": "tcp", "host_ip": "127.0.0.1"},  # the canary's port
    ]
    assert out["cache"]["ports"] == [{"target": 6379, "host_ip": "127.0.0.1"}]


def test_a_remote_engine_keeps_the_host_ip_it_was_given(user: Path, tmp_path: Path) -> None:
    out = run(user, tmp_path / "scratch", loopback=False).model["services"]["notes"]
    assert [p.get("host_ip") for p in out["ports"]] == [None, "0.0.0.0"]
    assert all("published" not in p for p in out["ports"])


def test_writable_binds_are_redirected_and_the_users_tree_is_untouched(
    user: Path, tmp_path: Path
) -> None:
    scratch = tmp_path / "scratch"
    before = sorted(p.relative_to(user) for p in user.rglob("*"))
    result = run(user, scratch)
    volumes = result.model["services"]["notes"]["volumes"]
    sources = {v["target"]: v.get("source") for v in volumes}
    exports = Path(sources["/exports"])
    assert exports.is_dir()
    assert scratch in exports.parents
    assert list(exports.iterdir()) == []  # fresh: none of the user's files
    conf = Path(sources["/etc/conf.ini"])
    assert scratch in conf.parents
    assert conf.read_text() == "[conf]\n"  # configuration: the run's own copy
    assert sources["/ro"] == str(user / "ro")  # declared read-only: nothing can write to it
    missing = Path(sources["/missing"])  # the engine would create it in the user's tree
    assert scratch in missing.parents
    assert missing.is_dir()
    assert all(v["bind"]["create_host_path"] is False for v in volumes if v["type"] == "bind")
    assert sorted(p.relative_to(user) for p in user.rglob("*")) == before


def test_a_bind_mounted_database_file_starts_empty(user: Path, tmp_path: Path) -> None:
    with sqlite3.connect(user / "conf.ini.tmp") as conn:
        conn.execute("CREATE TABLE users (id)")
    conn.close()
    (user / "conf.ini.tmp").replace(user / "conf.ini")
    volumes = run(user, tmp_path / "scratch").model["services"]["notes"]["volumes"]
    copy = Path(next(v["source"] for v in volumes if v["target"] == "/etc/conf.ini"))
    assert copy.stat().st_size == 0  # a fresh install, not the user's data


def test_bind_mounts_read_only_mounts_the_users_folders_read_only(
    user: Path, tmp_path: Path
) -> None:
    result = run(user, tmp_path / "scratch", bind_mounts="read-only")
    binds = [v for v in result.model["services"]["notes"]["volumes"] if v["type"] == "bind"]
    assert all(v["read_only"] for v in binds)
    sources = {v["target"]: v["source"] for v in binds}
    assert sources["/exports"] == str(user / "exports")
    assert sources["/etc/conf.ini"] == str(user / "conf.ini")
    assert (tmp_path / "scratch") in Path(sources["/missing"]).parents  # never created there


def test_declared_mounts_say_what_the_author_wrote(user: Path, tmp_path: Path) -> None:
    result = run(user, tmp_path / "scratch", fs_type=lambda p: "nfs4" if "exports" in p else "")
    exports = result.model["services"]["notes"]["volumes"][1]["source"]
    assert result.declared == [
        DeclaredMount("volume", "data", "/data", False),
        DeclaredMount(
            "bind",
            str(user / "exports"),
            "/exports",
            False,
            f"bind source {user / 'exports'} is on nfs4",
            exports,
        ),
        DeclaredMount(
            "bind",
            str(user / "conf.ini"),
            "/etc/conf.ini",
            False,
            "",
            str(tmp_path / "scratch" / "bind-2" / "conf.ini"),
        ),
        DeclaredMount("bind", str(user / "ro"), "/ro", True),
        DeclaredMount(
            "bind",
            str(user / "missing"),
            "/missing",
            False,
            "",
            str(tmp_path / "scratch" / "bind-3" / "missing"),
        ),
        DeclaredMount("anonymous", "", "/cache", False),
        DeclaredMount("tmpfs", "", "/tmp/t", False),
    ]


@pytest.mark.parametrize(
    ("volume", "network_fs"),
    [
        ({"driver_opts": {"type": "nfs", "device": ":/x"}}, "volume data has driver_opts type=nfs"),
        ({"driver_opts": {"type": "cifs"}}, "volume data has driver_opts type=cifs"),
        ({"driver_opts": {"type": "none", "o": "bind"}}, ""),
        ({}, ""),
    ],
)
def test_a_volume_on_a_network_filesystem_is_declared_so(
    user: Path, tmp_path: Path, volume: dict[str, Any], network_fs: str
) -> None:
    source = model(user)
    source["volumes"]["data"] = volume
    result = rewrite(
        source, service="notes", project=PROJECT, labels=LABELS, scratch=tmp_path / "s"
    )
    assert result.declared[0].network_fs == network_fs
    assert result.model["volumes"]["data"].get("driver_opts") == volume.get("driver_opts")


def test_the_audited_service_gets_the_configs_env_and_healthcheck(
    user: Path, tmp_path: Path
) -> None:
    check = HealthcheckSpec(test=["CMD", "true"], interval=0.5, retries=2, start_period=1)
    out = run(user, tmp_path / "s", env={"MODE": "audit"}, healthcheck=check).model["services"]
    assert out["notes"]["environment"] == {"NOTES_DB_PATH": "/data/notes.db", "MODE": "audit"}
    assert out["notes"]["healthcheck"] == {
        "test": ["CMD", "true"],
        "interval": "0.5s",
        "timeout": "5s",
        "retries": 2,
        "start_period": "1s",
    }
    assert "healthcheck" not in out["cache"]


def test_builds_run_by_id_and_local_images_are_never_pulled(user: Path, tmp_path: Path) -> None:
    out = run(user, tmp_path / "s", built={"notes": "sha256:abc"}, local_images={"redis:7"}).model[
        "services"
    ]
    assert "build" not in out["notes"]
    assert out["notes"]["image"] == "sha256:abc"  # what was built, not a tag moved since
    assert out["notes"]["pull_policy"] == "never"
    assert out["cache"]["pull_policy"] == "never"
    out = run(user, tmp_path / "t").model["services"]
    assert "pull_policy" not in out["cache"]  # not on this engine: compose may pull it


def test_a_fixed_container_name_becomes_the_runs_with_the_old_as_alias(
    user: Path, tmp_path: Path
) -> None:
    out = run(user, tmp_path / "s").model["services"]["notes"]
    assert out["container_name"] == f"{PROJECT}-notes"
    assert out["networks"] == {"default": {"aliases": ["notes"]}}
    assert "profiles" not in out


def test_the_input_model_is_not_changed(user: Path, tmp_path: Path) -> None:
    source = model(user)
    rewrite(source, service="notes", project=PROJECT, labels=LABELS, scratch=tmp_path / "s")
    assert source == model(user)


@pytest.mark.parametrize(
    ("service", "answer"),
    [
        ({"healthcheck": {"test": ["CMD", "true"]}}, True),
        ({"healthcheck": {"disable": True}}, False),
        ({"healthcheck": {"test": ["NONE"]}}, False),
        ({}, None),
    ],
)
def test_has_healthcheck(service: dict[str, Any], answer: bool | None) -> None:
    assert has_healthcheck(service) is answer


def test_image_tags_are_valid_references() -> None:
    assert image_tag("notes-app.v2", "Web_UI") == "persistaudit/notes-app.v2-web_ui:audit"

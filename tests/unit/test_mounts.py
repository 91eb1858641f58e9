from __future__ import annotations

import pytest

from persistaudit.mounts import as_mounts, declared_line, evaluate
from persistaudit.runtime.base import DeclaredMount, Mount


def mount(dest: str, type_: str = "volume", *, rw: bool = True, anonymous: bool = False) -> Mount:
    return Mount(
        type_,
        f"/var/lib/docker/volumes/v{dest}",
        dest,
        "v" if type_ == "volume" else "",
        rw,
        anonymous,
    )


def test_named_volume_holding_the_folder_passes() -> None:
    verdict = evaluate([mount("/data")], "/data/app.db")
    assert verdict.ok
    assert verdict.kind == "named volume"


def test_bind_mount_of_a_parent_folder_passes() -> None:
    verdict = evaluate([mount("/srv", "bind"), mount("/tmp/x", "tmpfs")], "/srv/state/app.db")
    assert verdict.ok
    assert verdict.kind == "bind"


def test_deepest_mount_wins() -> None:
    verdict = evaluate([mount("/data"), mount("/data/db", "tmpfs")], "/data/db/app.db")
    assert not verdict.ok
    assert "tmpfs" in verdict.problems[0]


@pytest.mark.parametrize(
    ("mounts", "fragment"),
    [
        ([], "/app/state is on the container layer"),
        ([mount("/data")], "/app/state is on the container layer"),
        ([mount("/app/state", anonymous=True)], "anonymous volume"),
        ([mount("/app/state", rw=False)], "read-only"),
        ([mount("/app/state/app.db", "bind")], "mounted as a single file"),
        ([mount("/app/st")], "container layer"),  # a prefix of the name is not a parent folder
    ],
)
def test_problems(mounts: list[Mount], fragment: str) -> None:
    verdict = evaluate(mounts, "/app/state/app.db")
    assert not verdict.ok
    assert any(fragment in p for p in verdict.problems), verdict.problems


@pytest.mark.parametrize(
    ("wal", "said", "unsaid"),
    [
        (True, "its -wal and -shm files are written to /app/state", "-journal"),
        (False, "its -journal file is written to /app/state", "-wal"),
    ],
)
def test_a_single_file_mount_names_the_companions_of_the_journal_mode(
    wal: bool, said: str, unsaid: str
) -> None:
    verdict = evaluate([mount("/app/state/app.db", "bind")], "/app/state/app.db", wal=wal)
    assert any(said in p for p in verdict.problems), verdict.problems
    assert not any(unsaid in p for p in verdict.problems), verdict.problems


# -- network filesystems, from the compose model (what the author declared) -----------------


def declared(target: str, network_fs: str = "", type_: str = "volume") -> DeclaredMount:
    return DeclaredMount(type_, "data", target, False, network_fs)


def test_a_wal_database_on_an_nfs_volume_is_a_finding() -> None:
    nfs = declared("/data", "volume data has driver_opts type=nfs")
    verdict = evaluate([mount("/data")], "/data/app.db", wal=True, declared=[nfs])
    assert not verdict.ok
    assert verdict.problems == [
        "/data/app.db is a WAL database on a network filesystem (volume data has driver_opts "
        "type=nfs): WAL needs shared memory between the processes using it, which NFS and "
        "CIFS do not provide, so the database can be corrupted"
    ]


def test_the_network_filesystem_counts_only_for_the_mount_holding_the_database() -> None:
    other = declared("/exports", "bind source /mnt/share is on cifs", "bind")
    verdict = evaluate(
        [mount("/data"), mount("/exports", "bind")], "/data/app.db", declared=[other]
    )
    assert verdict.ok


def test_a_rollback_journal_database_on_nfs_is_not_flagged_as_wal() -> None:
    nfs = declared("/data", "volume data has driver_opts type=nfs")
    assert evaluate([mount("/data")], "/data/app.db", wal=False, declared=[nfs]).ok


def test_a_local_declared_volume_passes() -> None:
    assert evaluate([mount("/data")], "/data/app.db", declared=[declared("/data")]).ok


def test_declared_lines_show_intent_redirection_and_network_fs() -> None:
    bind = DeclaredMount("bind", "/home/u/exports", "/exports", False, "", "/tmp/run/bind-1")
    nfs = DeclaredMount("volume", "data", "/data", False, "volume data has driver_opts type=nfs")
    anon = DeclaredMount("anonymous", "", "/cache", False)
    assert declared_line(bind) == (
        "bind      /home/u/exports -> /exports (rw); this run mounted /tmp/run/bind-1 in its place"
    )
    assert declared_line(nfs) == (
        "volume    data -> /data (rw); network filesystem: volume data has driver_opts type=nfs"
    )
    assert declared_line(anon) == "anonymous (anonymous) -> /cache (rw)"


def test_the_model_alone_judges_a_service_that_never_started() -> None:
    model = [
        DeclaredMount("volume", "data", "/data", False, "volume data has driver_opts type=nfs"),
        DeclaredMount("anonymous", "", "/cache", False),
        DeclaredMount("bind", "/etc/conf", "/conf", True),
    ]
    mounts = as_mounts(model)
    assert [(m.type, m.name, m.destination, m.rw, m.anonymous) for m in mounts] == [
        ("volume", "data", "/data", True, False),
        ("volume", "", "/cache", True, True),
        ("bind", "", "/conf", False, False),
    ]
    assert (
        "WAL database on a network filesystem"
        in evaluate(mounts, "/data/app.db", declared=model).problems[0]
    )
    assert "anonymous volume" in evaluate(mounts, "/cache/app.db", declared=model).problems[0]

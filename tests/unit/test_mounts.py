from __future__ import annotations

import pytest

from persistaudit.mounts import evaluate
from persistaudit.runtime.base import Mount


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

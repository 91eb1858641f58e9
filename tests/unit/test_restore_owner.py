"""A restored file keeps the live database file's owner, group and mode.

A service running as a non-root user must be able to write its restored database: a restore
written as root:root 0644 would fail for a reason that is persistaudit's, a false FAIL.
"""

from __future__ import annotations

import io
import os
import stat
import tarfile
from pathlib import Path

from persistaudit.exceptions import RestoreUnsupported
from persistaudit.runtime.restore import FileOwner, _archive
from persistaudit.snapshot import Budget, copy_member
from tests.unit.test_backup import fake_audit


def members(tar_path: Path) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(tar_path) as tar:
        return {m.name: m for m in tar.getmembers()}


def test_the_archive_gives_each_file_the_owner_and_mode_asked_for(tmp_path: Path) -> None:
    db = tmp_path / "app.backup.db"
    db.write_bytes(b"SQLite format 3\x00" + bytes(84))
    wal = tmp_path / "app.backup.db-wal"
    wal.write_bytes(b"wal")
    owners = {
        "/data/app.db": FileOwner(1000, 1001, 0o600),
        "/data/app.db-wal": FileOwner(1000, 1001, 0o640),
    }
    folder, tar_path = _archive(
        {"/data/app.db": db, "/data/app.db-wal": wal}, "/data", tmp_path, owners
    )
    assert folder == "/data"
    got = members(tar_path)
    assert set(got) == {"app.db", "app.db-wal"}
    assert (got["app.db"].uid, got["app.db"].gid, got["app.db"].mode) == (1000, 1001, 0o600)
    assert got["app.db-wal"].mode == 0o640
    # No names: the engine applies the numeric ids, not whatever user "root" maps to.
    assert got["app.db"].uname == got["app.db"].gname == ""


def test_a_file_whose_owner_is_unknown_is_roots_0644(tmp_path: Path) -> None:
    db = tmp_path / "app.backup.db"
    db.write_bytes(b"x")
    os.chmod(db, 0o600)
    _folder, tar_path = _archive({"/srv/app.db": db}, "/data", tmp_path)
    (member,) = members(tar_path).values()
    assert member.name == "srv/app.db"  # outside the mount: unpacked at /
    assert (member.uid, member.gid, member.mode) == (0, 0, 0o644)


def test_the_copy_out_records_the_files_owner_and_mode(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        info = tarfile.TarInfo("app.db")
        info.size, info.uid, info.gid, info.mode = 3, 70, 71, 0o100660
        tar.addfile(info, io.BytesIO(b"abc"))
    owners: dict[str, FileOwner] = {}
    target = tmp_path / "app.db"
    copy_member(iter([buffer.getvalue()]), "app.db", target, Budget(tmp_path, 10**6), owners)
    assert owners == {"app.db": FileOwner(70, 71, 0o660)}


def test_the_backup_stage_restores_with_the_live_files_owner(
    config_dir: Path, tmp_path: Path
) -> None:
    """The stage hands the driver's restore the live database file's owner and mode for
    every restored file (on the fake, the volume's file is the live one)."""
    from persistaudit import backup_stage, stages

    assert stages.get("backup").run is backup_stage.run_backup  # imported: registered
    audit, runtime = fake_audit(config_dir, tmp_path)
    volume = runtime.volume
    asked: list[dict[str, FileOwner] | None] = []

    def restore(
        files: dict[str, Path], scratch: Path, owners: dict[str, FileOwner] | None = None
    ) -> None:
        asked.append(owners)
        raise RestoreUnsupported("recorded")

    runtime.restore = restore  # type: ignore[assignment,method-assign]
    try:
        assert audit.fresh.blocked is None
        os.chmod(volume / "app.db", 0o600)
        audit.stage("backup")
    finally:
        runtime.close()
    (owners,) = asked
    assert owners
    live = (volume / "app.db").stat()
    expected = FileOwner(live.st_uid, live.st_gid, stat.S_IMODE(live.st_mode))
    assert expected.mode == 0o600
    assert set(owners.values()) == {expected}
    assert "/data/app.db" in owners

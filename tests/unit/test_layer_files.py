"""SQLite files in the container layer, found on the fake's layer (real tar streams)."""

from __future__ import annotations

import io
import tarfile
from collections.abc import Iterator
from pathlib import Path

from persistaudit import upper_dir
from persistaudit.layer_files import head, scan
from persistaudit.sqlite_files import MAGIC
from tests.unit.fakes import FakeHandle

DATABASE = MAGIC + b"\x10\x00" + b"\x00" * 200


def handle(tmp_path: Path) -> FakeHandle:
    return FakeHandle("x", tmp_path, "/data")


def test_databases_in_the_layer_are_found_by_their_header(tmp_path: Path) -> None:
    fake = handle(tmp_path)
    fake.layer = {
        "/var/lib/app/index.db": DATABASE,
        "/var/lib/app/index.db-wal": b"\x37\x7f\x06\x82" + b"\x00" * 40,
        "/var/lib/app/index.db-journal": DATABASE,  # a companion: never read on its own
        "/srv/state": DATABASE,  # any name: the header decides
        "/etc/app.conf": b"SQLite format 2 is not this",
        "/app/empty.db": b"",
    }

    found = scan(fake, "after the fresh install")

    assert found.databases == ["/srv/state", "/var/lib/app/index.db"]
    assert "/var/lib/app" in found.changed  # listed, but a folder is not read
    assert not found.unexamined
    assert found.when == "after the fresh install"
    assert found.listed_by == "docker diff"  # a handle that does not say: the engine's word


def test_the_scan_says_how_the_handle_listed_the_layer(tmp_path: Path) -> None:
    fake = handle(tmp_path)
    fake.layer = {"/var/lib/app/index.db": DATABASE}
    fake.layer_listed_by = upper_dir.FROM_HOST  # type: ignore[attr-defined]
    assert scan(fake, "now").listed_by == upper_dir.FROM_HOST


def test_mounts_and_scratch_folders_are_left_out(tmp_path: Path) -> None:
    fake = handle(tmp_path)
    fake.layer = {
        "/data/app.db": DATABASE,  # under the mount: the volume, not the layer
        "/tmp/scratch.db": DATABASE,
        "/run/lock.db": DATABASE,
        "/proc/x": DATABASE,
        "/opt/kept.sqlite": DATABASE,
    }

    found = scan(fake, "now")

    assert found.databases == ["/opt/kept.sqlite"]
    assert found.changed == ["/opt", "/opt/kept.sqlite"]
    assert found.ignored == 6  # /tmp, /run, /proc and the files in them


def test_at_most_limit_files_are_read_likely_names_first(tmp_path: Path) -> None:
    fake = handle(tmp_path)
    fake.layer = {f"/srv/file{i:02d}": b"not a database" for i in range(10)}
    fake.layer["/srv/zz.sqlite3"] = DATABASE
    read: list[str] = []
    original = fake.get_archive

    def counting(path: str):  # type: ignore[no-untyped-def]
        read.append(path)
        return original(path)

    fake.get_archive = counting  # type: ignore[method-assign]

    found = scan(fake, "now", limit=3)

    assert found.databases == ["/srv/zz.sqlite3"]
    assert len(read) == 3
    assert len(found.unexamined) == 8


def test_head_reads_the_first_bytes_of_regular_files_only(tmp_path: Path) -> None:
    fake = handle(tmp_path)
    fake.layer = {"/srv/a.db": DATABASE}
    assert head(fake, "/srv/a.db") == MAGIC
    assert head(fake, "/srv/missing.db") == b""

    def archive_of(member: tarfile.TarInfo) -> Iterator[bytes]:
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w") as tar:
            tar.addfile(member, io.BytesIO(DATABASE) if member.isfile() else None)
        return iter([buffer.getvalue()])

    folder = tarfile.TarInfo("srv")
    folder.type = tarfile.DIRTYPE
    link = tarfile.TarInfo("a.db")
    link.type, link.linkname = tarfile.SYMTYPE, "/srv/a.db"
    for member in (folder, link):
        fake.get_archive = lambda _path, m=member: archive_of(m)  # type: ignore[method-assign,misc]
        assert head(fake, "/srv") == b""
    fake.get_archive = lambda _path: iter([b"garbage" * 100])  # type: ignore[method-assign]
    assert head(fake, "/srv") == b""

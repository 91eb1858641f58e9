"""The copy out of the container: one pass from the engine's tar stream to the file, within
database.max_size and the free disk space, and a clear error for any bad stream.

The engine is faked by an iterator of tar chunks; the real pause and copy are in tests/e2e.
"""

from __future__ import annotations

import contextlib
import io
import tarfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from persistaudit.exceptions import DatabaseTooLarge, SnapshotError
from persistaudit.snapshot import Budget, copy_member, take_snapshot

WHERE = "/data/app.db in container box"
HEADER = b"SQLite format 3\x00" + bytes(84)  # byte 18 = 0: rollback journal, no -wal


def tar_of(*members: tuple[str, bytes, bytes]) -> bytes:
    """A tar archive; each member is (name, content, tar type)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, content, kind in members:
            info = tarfile.TarInfo(name)
            info.type = kind
            if kind == tarfile.REGTYPE:
                info.size = len(content)
                tar.addfile(info, io.BytesIO(content))
            else:
                info.linkname = "real.db"
                tar.addfile(info)
    return buf.getvalue()


def chunks(data: bytes, size: int = 1000) -> Iterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


GOOD = tar_of(("app.db", HEADER + b"x" * 5000, tarfile.REGTYPE))


def copy(data: bytes, target: Path, max_size: int = 10**9) -> int:
    return copy_member(chunks(data), WHERE, target, Budget(target.parent, max_size))


def test_a_regular_file_is_copied(tmp_path: Path) -> None:
    assert copy(GOOD, tmp_path / "app.db") == 5100
    assert (tmp_path / "app.db").read_bytes() == HEADER + b"x" * 5000


@pytest.mark.parametrize(
    ("archive", "message"),
    [
        (GOOD[:2000], "the engine's archive is malformed or cut off: unexpected end of data"),
        (GOOD[:100], "the engine's archive is malformed or cut off: truncated header"),
        (b"garbage " * 200, "the engine's archive is malformed or cut off: invalid header"),
        (b"", "the engine's archive is malformed or cut off: empty file"),
        (bytes(1024), "the engine sent an empty archive"),
        (
            tar_of(("app.db", b"", tarfile.SYMTYPE)),
            "is a link to real.db, not a regular file. Hint: set database.path",
        ),
        (tar_of(("app.db", b"", tarfile.LNKTYPE)), "is a link to real.db, not a regular file"),
        (tar_of(("app.db", b"", tarfile.DIRTYPE)), "is not a regular file"),
        (tar_of(("app.db", b"", tarfile.FIFOTYPE)), "is not a regular file"),
        (
            tar_of(("a.db", b"1", tarfile.REGTYPE), ("b.db", b"2", tarfile.REGTYPE)),
            "the engine's archive holds more than one file",
        ),
    ],
    ids=[
        "truncated-data",
        "truncated-header",
        "garbage",
        "nothing",
        "empty-archive",
        "symlink",
        "hardlink",
        "directory",
        "fifo",
        "two-members",
    ],
)
def test_a_bad_archive_is_one_clear_error(tmp_path: Path, archive: bytes, message: str) -> None:
    with pytest.raises(SnapshotError) as info:
        copy(archive, tmp_path / "app.db")
    assert str(info.value).startswith(WHERE)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_a_database_over_max_size_is_refused_before_it_is_copied(tmp_path: Path) -> None:
    pulled: list[int] = []

    def stream() -> Iterator[bytes]:
        for i, chunk in enumerate(chunks(GOOD, 512)):
            pulled.append(i)
            yield chunk

    with pytest.raises(DatabaseTooLarge) as info:
        copy_member(stream(), WHERE, tmp_path / "app.db", Budget(tmp_path, 4096))
    assert str(info.value) == (
        f"{WHERE} is 5.0 KiB, over the limit of 4.0 KiB (database.max_size). Hint: raise"
        " database.max_size in the config if the host can hold a copy that large."
    )
    assert len(pulled) == 1  # the tar header said so: nothing of the file was read
    assert not (tmp_path / "app.db").exists()


def test_a_database_is_never_copied_past_the_free_space(tmp_path: Path) -> None:
    budget = Budget(tmp_path, 10**15, margin=0)
    budget.free = 4000  # what the disk has left, as shutil.disk_usage said
    with pytest.raises(DatabaseTooLarge, match=r"is 5\.0 KiB, more than the 3\.9 KiB free in"):
        copy_member(chunks(GOOD), WHERE, tmp_path / "app.db", budget)


def test_free_space_is_measured_less_a_margin(tmp_path: Path) -> None:
    whole = Budget(tmp_path, 10**15, margin=0)
    kept = Budget(tmp_path, 10**15, margin=2**20)
    assert 0 < whole.free - kept.free <= 2**20 + 10**5  # the disk may change meanwhile
    with pytest.raises(DatabaseTooLarge, match=r"keeping 1\.0 MiB free"):
        kept.reserve(WHERE, kept.free + 1)


@dataclass
class FakeContainer:
    """What take_snapshot needs of a container: a name, a pause and archive streams."""

    archives: dict[str, Callable[[], Iterator[bytes]]]
    name: str = "box"
    paused_now: bool = False
    pauses: int = 0
    events: list[str] = field(default_factory=list)

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        self.paused_now, self.pauses = True, self.pauses + 1
        try:
            yield
        finally:
            self.paused_now = False

    def get_archive(self, path: str) -> Iterator[bytes] | None:
        factory = self.archives.get(path)
        return None if factory is None else factory()


def test_the_stream_is_written_as_it_is_read_not_spooled_first(tmp_path: Path) -> None:
    """The file grows while the engine's stream is still being read: one pass, no spool."""
    big = HEADER + bytes(3 * 1024 * 1024)
    archive = tar_of(("app.db", big, tarfile.REGTYPE))
    target = tmp_path / "snap" / "app.db"
    seen: list[int] = []

    def stream() -> Iterator[bytes]:
        for chunk in chunks(archive, 64 * 1024):
            seen.append(target.stat().st_size if target.exists() else -1)
            yield chunk

    box = FakeContainer({"/data/app.db": stream})
    snap = take_snapshot(box, "/data/app.db", tmp_path / "snap", max_size=10**9)  # type: ignore[arg-type]
    assert snap.files == {"app.db": len(big)}
    assert target.stat().st_size == len(big)
    assert max(seen) > 0  # bytes were on disk before the last chunk was read


def test_a_copy_that_breaks_midway_unpauses_and_leaves_no_partial_file(tmp_path: Path) -> None:
    def broken() -> Iterator[bytes]:
        yield GOOD[:1024]
        raise ConnectionResetError("the engine went away")

    box = FakeContainer({"/data/app.db": broken})
    with pytest.raises(SnapshotError) as info:
        take_snapshot(box, "/data/app.db", tmp_path / "snap", max_size=10**9)  # type: ignore[arg-type]
    assert str(info.value) == (
        f"{WHERE}: the copy failed, the engine's stream broke: "
        "ConnectionResetError: the engine went away"
    )
    assert (box.pauses, box.paused_now) == (1, False)
    assert list((tmp_path / "snap").iterdir()) == []


def test_the_sidecars_count_against_the_same_budget(tmp_path: Path) -> None:
    wal_header = b"SQLite format 3\x00" + bytes(2) + b"\x02" + bytes(81)  # WAL mode
    box = FakeContainer(
        {
            "/data/app.db": lambda: chunks(tar_of(("app.db", wal_header, tarfile.REGTYPE))),
            "/data/app.db-wal": lambda: chunks(tar_of(("app.db-wal", bytes(900), tarfile.REGTYPE))),
        }
    )
    with pytest.raises(DatabaseTooLarge) as info:
        take_snapshot(box, "/data/app.db", tmp_path / "snap", max_size=950)  # type: ignore[arg-type]
    assert str(info.value).startswith(
        "/data/app.db-wal in container box is 900 bytes (1000 bytes with the files before it),"
        " over the limit of 950 bytes (database.max_size)"
    )
    assert box.paused_now is False


@pytest.mark.parametrize(
    ("write_version", "wanted", "copied"),
    [
        (2, ("-wal", "-shm"), {"app.db", "app.db-wal", "app.db-shm"}),
        (1, ("-journal",), {"app.db", "app.db-journal"}),
    ],
)
def test_the_companions_taken_follow_the_header(
    tmp_path: Path, write_version: int, wanted: tuple[str, ...], copied: set[str]
) -> None:
    header = b"SQLite format 3\x00\x10\x00" + bytes([write_version] * 2) + bytes(80)
    box = FakeContainer(
        {
            f"/data/{name}": lambda name=name: chunks(tar_of((name, header, tarfile.REGTYPE)))
            for name in ("app.db", "app.db-wal", "app.db-shm", "app.db-journal")
        }
    )
    snap = take_snapshot(box, "/data/app.db", tmp_path / "snap", max_size=10**9)  # type: ignore[arg-type]
    assert snap.companions == wanted
    assert set(snap.files) == copied
    assert {p.name for p in (tmp_path / "snap").iterdir()} == copied

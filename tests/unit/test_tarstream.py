"""The tar reader of the copy-out: every header form an engine may send, data passed on as
views of the engine's chunks, and the same errors as tarfile."""

from __future__ import annotations

import io
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from persistaudit import tarstream
from persistaudit.runtime.restore import FileOwner
from persistaudit.snapshot import Budget, copy_member

LONG = "data/" + "d" * 150 + "/app.db"  # too long for a ustar name


def archive(fmt: int, name: str = "app.db", content: bytes = b"x" * 1500, uid: int = 70) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tar:
        info = tarfile.TarInfo(name)
        info.size, info.uid, info.gid, info.mode = len(content), uid, 71, 0o640
        tar.addfile(info, io.BytesIO(content))
    return buf.getvalue()


def pieces(data: bytes, size: int) -> Iterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


@pytest.mark.parametrize("fmt", [tarfile.USTAR_FORMAT, tarfile.GNU_FORMAT, tarfile.PAX_FORMAT])
@pytest.mark.parametrize("size", [1, 100, 512, 4096])
def test_every_header_form_and_chunking_gives_the_file(fmt: int, size: int) -> None:
    name = "app.db" if fmt == tarfile.USTAR_FORMAT else LONG
    content = bytes(range(256)) * 9
    chunks = tarstream.Chunks(pieces(archive(fmt, name, content), size))
    member = tarstream.next_member(chunks)
    assert member is not None
    assert (member.name, member.size) == (name, len(content))
    assert b"".join(bytes(v) for v in tarstream.member_data(chunks, member)) == content
    assert tarstream.next_member(chunks) is None


def test_pax_records_override_the_ustar_fields(tmp_path: Path) -> None:
    """A uid too large for the octal field comes in a PAX record; the owner is taken from it."""
    owners: dict[str, FileOwner] = {}
    data = archive(tarfile.PAX_FORMAT, LONG, b"y" * 700, uid=5_000_000)
    target = tmp_path / "app.db"
    assert copy_member(pieces(data, 333), "w", target, Budget(tmp_path, 10**6), owners) == 700
    assert owners["app.db"] == FileOwner(5_000_000, 71, 0o640)
    assert target.read_bytes() == b"y" * 700


def test_the_data_is_handed_on_without_copies() -> None:
    """One view per chunk of the engine's stream: a gigabyte costs one write per chunk."""
    data = archive(tarfile.USTAR_FORMAT, content=bytes(5000))
    head, body = data[:512], data[512:]
    chunks = tarstream.Chunks(iter([head, body]))
    member = tarstream.next_member(chunks)
    assert member is not None
    views = list(tarstream.member_data(chunks, member))
    assert len(views) == 1
    assert views[0].obj is body


def test_the_digest_of_each_copied_file_is_recorded(tmp_path: Path) -> None:
    import hashlib

    digests: dict[str, str] = {}
    data = archive(tarfile.USTAR_FORMAT, content=b"z" * 3000)
    copy_member(
        pieces(data, 1000), "w", tmp_path / "app.db", Budget(tmp_path, 10**6), None, digests
    )
    assert digests == {"app.db": hashlib.sha256(b"z" * 3000).hexdigest()}


def test_a_pax_record_that_is_malformed_is_an_invalid_header() -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        bad = tarfile.TarInfo("././@PaxHeader")
        bad.type = tarfile.XHDTYPE
        record = b"zz size=1\n"
        bad.size = len(record)
        tar.addfile(bad, io.BytesIO(record))
    with pytest.raises(tarfile.ReadError, match="invalid header"):
        tarstream.next_member(tarstream.Chunks(iter([buf.getvalue()])))

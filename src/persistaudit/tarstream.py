"""The members of a tar stream, read in one pass with the data handed on as the engine sent it.

tarfile's stream mode copies every byte three or four times through 10 KiB reads (about
50 MB/s here); a database copy spends most of its time there. This reader parses headers
with tarfile.TarInfo.frombuf (ustar, GNU and base-256 numbers), applies PAX and GNU long-name
records itself, and yields a member's data as memoryviews of the engine's own chunks, so a
gigabyte costs one write per chunk. Error messages are tarfile's.
"""

from __future__ import annotations

import tarfile
from collections.abc import Iterator

BLOCK = 512
_LONG_NAME = (tarfile.GNUTYPE_LONGNAME, tarfile.GNUTYPE_LONGLINK)
_PAX = (tarfile.XHDTYPE, tarfile.SOLARIS_XHDTYPE)
_MAX_META = 1024**2  # a PAX or long-name record larger than this is no engine's archive


class StreamBroken(Exception):
    """The archive stream from the engine failed part-way (a connection error, say)."""


class Chunks:
    """Exact reads over an iterator of byte chunks, such as the engine's archive stream."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._pending = memoryview(b"")

    def _more(self) -> bool:
        try:
            chunk = next(self._chunks)
        except StopIteration:
            return False
        except Exception as exc:  # the transport's errors are many; all end the copy
            raise StreamBroken(f"{type(exc).__name__}: {exc}") from exc
        self._pending = memoryview(chunk)
        return True

    def read(self, size: int) -> bytes:
        """size bytes, or fewer at the end of the stream."""
        parts: list[bytes] = []
        while size > 0 and (self._pending or self._more()):
            part = self._pending[:size]
            self._pending = self._pending[len(part) :]
            parts.append(bytes(part))
            size -= len(part)
        return b"".join(parts)

    def views(self, size: int) -> Iterator[memoryview]:
        """The next size bytes as views of the chunks; ReadError if the stream ends first."""
        while size > 0:
            if not self._pending and not self._more():
                raise tarfile.ReadError("unexpected end of data")
            part = self._pending[:size]
            self._pending = self._pending[len(part) :]
            size -= len(part)
            yield part


def _padding(size: int) -> int:
    return -size % BLOCK


def next_member(stream: Chunks) -> tarfile.TarInfo | None:
    """The next member's header (its data follows in the stream); None at the archive's end."""
    pax: dict[str, str] = {}
    long_name = long_link = ""
    first = True
    while True:
        buf = stream.read(BLOCK)
        if not buf:  # what tarfile calls an empty header
            if first:
                raise tarfile.ReadError("empty file")
            return None
        if buf.count(0) == BLOCK:
            return None  # a zero block: the end of the archive
        try:
            info = tarfile.TarInfo.frombuf(buf, "utf-8", "surrogateescape")
        except tarfile.HeaderError as exc:
            if first:
                raise tarfile.ReadError(str(exc)) from None
            return None  # as tarfile does: what follows a member that is no header ends it
        first = False
        if info.type in _LONG_NAME or info.type in _PAX or info.type == tarfile.XGLTYPE:
            if info.size > _MAX_META:
                raise tarfile.ReadError(f"a {info.size}-byte extended header")
            data = stream.read(info.size + _padding(info.size))[: info.size]
            if len(data) < info.size:
                raise tarfile.ReadError("unexpected end of data")
            if info.type == tarfile.GNUTYPE_LONGNAME:
                long_name = data.rstrip(b"\0").decode("utf-8", "surrogateescape")
            elif info.type == tarfile.GNUTYPE_LONGLINK:
                long_link = data.rstrip(b"\0").decode("utf-8", "surrogateescape")
            elif info.type in _PAX:
                pax.update(_pax_records(data))
            continue
        return _apply(info, pax, long_name, long_link)


def _pax_records(data: bytes) -> dict[str, str]:
    """A PAX header's "LENGTH key=value\\n" records."""
    records: dict[str, str] = {}
    pos = 0
    while pos < len(data) and data[pos] != 0:
        space = data.find(b" ", pos)
        try:
            length = int(data[pos:space])
        except ValueError:
            raise tarfile.ReadError("invalid header") from None
        record = data[space + 1 : pos + length - 1]
        key, sep, value = record.partition(b"=")
        if length < 1 or not sep:
            raise tarfile.ReadError("invalid header")
        records[key.decode("utf-8", "surrogateescape")] = value.decode("utf-8", "surrogateescape")
        pos += length
    return records


def _apply(info: tarfile.TarInfo, pax: dict[str, str], name: str, link: str) -> tarfile.TarInfo:
    info.name = pax.get("path", name or info.name)
    info.linkname = pax.get("linkpath", link or info.linkname)
    try:
        for key in ("size", "uid", "gid"):
            if key in pax:
                setattr(info, key, int(pax[key]))
    except ValueError:
        raise tarfile.ReadError("invalid header") from None
    info.pax_headers = pax
    return info


def member_data(stream: Chunks, info: tarfile.TarInfo) -> Iterator[memoryview]:
    """The member's data as views; the block padding after it is consumed too."""
    yield from stream.views(info.size)
    pad = _padding(info.size)
    if pad and len(stream.read(pad)) < pad:
        raise tarfile.ReadError("unexpected end of data")

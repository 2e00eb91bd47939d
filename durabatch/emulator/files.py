"""Stored files (uploaded bytes or lazily generated JSONL) and how they are streamed out.

Generated files are never materialised: their lines are produced on demand from the batch each
time they are downloaded, so a 200 MB output file costs CPU, not memory.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from aiohttp import web

__all__ = ["FileStore", "StoredFile", "parse_range_start", "stream_file"]

CHUNK = 256 * 1024
_RANGE = re.compile(r"^bytes=(\d+)-(\d*)$")


@dataclass
class StoredFile:
    id: str
    filename: str
    purpose: str
    created_at: float
    mime_type: str = "application/jsonl"
    data: bytes | None = None
    #: for generated files: a fresh iterator of encoded lines on each call
    lines: Callable[[], Iterable[bytes]] | None = None
    display_name: str | None = None
    _size: int | None = field(default=None, repr=False)

    @property
    def size(self) -> int:
        if self.data is not None:
            return len(self.data)
        if self._size is None:
            # One pass of generation, cached: the content is fixed once the batch has ended.
            self._size = sum(len(line) for line in self.iter_lines())
        return self._size

    def iter_lines(self) -> Iterable[bytes]:
        if self.data is not None:
            return [self.data]
        assert self.lines is not None
        return self.lines()

    def chunks(self, start: int = 0) -> Iterator[bytes]:
        """The content from byte `start`, in chunks of about CHUNK bytes."""
        if self.data is not None:
            for off in range(start, len(self.data), CHUNK):
                yield self.data[off : off + CHUNK]
            return
        skip = start
        buf: list[bytes] = []
        buffered = 0
        for line in self.iter_lines():
            if skip:
                if len(line) <= skip:
                    skip -= len(line)
                    continue
                line = line[skip:]
                skip = 0
            buf.append(line)
            buffered += len(line)
            if buffered >= CHUNK:
                yield b"".join(buf)
                buf, buffered = [], 0
        if buf:
            yield b"".join(buf)


class FileStore:
    """Files of one provider, keyed by their public id."""

    def __init__(self) -> None:
        self.files: dict[str, StoredFile] = {}

    def add(self, f: StoredFile) -> StoredFile:
        self.files[f.id] = f
        return f

    def get(self, file_id: str) -> StoredFile | None:
        return self.files.get(file_id)

    def delete(self, file_id: str) -> bool:
        return self.files.pop(file_id, None) is not None

    def clear(self) -> None:
        self.files.clear()


def parse_range_start(header: str | None, size: int) -> tuple[int, int] | None:
    """(start, end_inclusive) of a single `bytes=N-[M]` range, or None to send everything."""
    if not header:
        return None
    m = _RANGE.match(header.strip())
    if not m:
        return None
    start = int(m.group(1))
    end = int(m.group(2)) if m.group(2) else size - 1
    return start, min(end, size - 1)


async def stream_file(
    request: web.Request,
    f: StoredFile,
    *,
    content_type: str,
    honour_range: bool,
    cut_after: int | None = None,
) -> web.StreamResponse:
    """Stream `f`, honouring `Range: bytes=N-` when asked, optionally cutting the connection after
    `cut_after` body bytes (the `truncate_download` fault)."""
    # Sizing a generated file means generating it once: keep that off the event loop.
    size = await asyncio.to_thread(lambda: f.size)
    rng = parse_range_start(request.headers.get("Range"), size) if honour_range else None
    start, end = 0, size - 1
    resp = web.StreamResponse(status=200)
    resp.content_type = content_type
    if honour_range:
        resp.headers["Accept-Ranges"] = "bytes"
    if rng is not None:
        start, end = rng
        if start >= size and size > 0:
            return web.Response(status=416, headers={"Content-Range": f"bytes */{size}"})
        resp.set_status(206)
        resp.headers["Content-Range"] = f"bytes {start}-{end}/{size}"
    length = max(0, end - start + 1)
    resp.content_length = length
    await resp.prepare(request)
    sent = 0
    limit = length if cut_after is None else min(length, cut_after)
    for chunk in f.chunks(start):
        if sent + len(chunk) > limit:
            chunk = chunk[: limit - sent]
        if chunk:
            await resp.write(chunk)
            sent += len(chunk)
        if sent >= limit:
            break
    if cut_after is not None and sent < length:
        # Close after flushing what was written: the client sees a short body (docs/providers.md, trap 5).
        if request.transport is not None:
            request.transport.close()
        return resp
    await resp.write_eof()
    return resp

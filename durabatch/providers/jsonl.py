"""JSONL framing on raw bytes: the one place result and request streams are split into records.

Contract:
- Records are separated by the byte ``b"\\n"`` only. A trailing ``b"\\r"`` is stripped (CRLF files),
  blank lines are skipped. ``str.splitlines()`` is never used: it also splits on U+2028/U+2029 and
  other code points that may legally appear raw inside a JSON string (docs/providers.md, trap 13).
- Offsets count bytes consumed from the start of the stream, so that "the byte after the last
  complete line" is always known and a broken download can resume exactly there.
- A final record without a terminating newline is only a record once the stream ended cleanly;
  `LineSplitter.finish()` hands it out, and the caller decides whether it trusts it.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterable, AsyncIterator, Iterable
from typing import Any

__all__ = ["LineSplitter", "dumps_line", "iter_lines", "parse_line", "split_lines"]

_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), check_circular=False)


def split_lines(data: bytes) -> list[bytes]:
    """All records of a complete JSONL document (the last one may lack its newline)."""
    splitter = LineSplitter()
    out = [line for line, _ in splitter.feed(data)]
    tail = splitter.finish()
    if tail is not None:
        out.append(tail[0])
    return out


class LineSplitter:
    """Incremental splitter: feed chunks, get ``(record, offset_after_record)`` pairs.

    `start_offset` is the stream position of the first byte fed (non-zero when resuming with an
    HTTP range), so every offset returned is a position in the whole file.
    """

    def __init__(self, start_offset: int = 0) -> None:
        self._buffer = bytearray()
        # stream position of self._buffer[0]
        self._buffer_start = start_offset

    @property
    def pending_bytes(self) -> int:
        """Bytes received but not yet part of a complete line."""
        return len(self._buffer)

    def feed(self, chunk: bytes) -> list[tuple[bytes, int]]:
        # Search only the new chunk for newlines: the buffer before it is known to hold none.
        search_from = len(self._buffer)
        self._buffer += chunk
        out: list[tuple[bytes, int]] = []
        consumed = 0
        pos = self._buffer.find(b"\n", search_from)
        while pos != -1:
            line = bytes(self._buffer[consumed:pos])
            consumed = pos + 1
            if line.endswith(b"\r"):
                line = line[:-1]
            if line.strip():
                out.append((line, self._buffer_start + consumed))
            pos = self._buffer.find(b"\n", consumed)
        if consumed:
            del self._buffer[:consumed]
            self._buffer_start += consumed
        return out

    def finish(self) -> tuple[bytes, int] | None:
        """The unterminated last record, if any, once the stream has ended."""
        line = bytes(self._buffer)
        end = self._buffer_start + len(self._buffer)
        self._buffer_start = end
        self._buffer.clear()
        if line.endswith(b"\r"):
            line = line[:-1]
        if not line.strip():
            return None
        return line, end


async def iter_lines(chunks: AsyncIterable[bytes], start_offset: int = 0) -> AsyncIterator[tuple[bytes, int]]:
    """Records of a byte stream with the offset after each; the unterminated tail is yielded last."""
    splitter = LineSplitter(start_offset)
    async for chunk in chunks:
        for item in splitter.feed(chunk):
            yield item
    tail = splitter.finish()
    if tail is not None:
        yield tail


def parse_line(line: bytes) -> Any:
    """Decode one record. Raises ValueError (json.JSONDecodeError or UnicodeDecodeError) if broken."""
    return json.loads(line.decode("utf-8"))


def dumps_line(obj: object) -> bytes:
    """One compact JSONL record, newline included. Non-ASCII stays raw UTF-8: JSON escapes any
    control character, so the record can never contain a raw b"\\n".

    The bytes are json.dumps's, as staging measured them for the shard plan (msgspec is ten times
    faster but writes some floats longer, 1e-05 as 0.00001, which could push a full shard past
    the provider's byte limit); the encoder is built once, which a call with options does not."""
    return _ENCODER.encode(obj).encode("utf-8") + b"\n"


def dumps_lines(objs: Iterable[object]) -> bytes:
    return b"".join(dumps_line(o) for o in objs)

"""What the three provider clients share, written once: each client keeps only its wire format.

`ProviderClient` holds the name, limits, API key callable and the `ProviderHttp` view of the
shared httpx client; a subclass supplies its auth headers, its URLs and its request/response
shapes. The shared loops:

- `_list_pages` walks a provider's newest-first batch list for `find_submitted` and
  `list_batches`, a bounded number of pages (a runaway cursor cannot page forever); the caller
  stops early once it has found its batch or the list has passed the time window it looks in.
- `_summaries` is `list_batches` on top of it: each listed batch as a `ProviderBatchSummary`,
  stopping once the list has gone past `since`.
- `_result_lines` streams one JSONL result file, turning each line into a `ResultLine` that
  keeps the line as received and the cursor just after it, so an ingest can resume there.
- `cancel` posts to the provider's cancel URL; a batch that already ended answers 400 or 409,
  which is logged, not raised, so a cancel is always safe to repeat.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping
from contextlib import aclosing
from typing import Any

import httpx

from durabatch.providers.base import (
    ProviderBatchRef,
    ProviderBatchSummary,
    ProviderLimits,
    ResultCursor,
    ResultLine,
    ShardSubmission,
)
from durabatch.providers.http import ProviderHttp
from durabatch.providers.wire import unparsed_result

__all__ = ["FIND_MAX_PAGES", "UPLOAD_CHUNK_BYTES", "ProviderClient", "chunked"]

log = logging.getLogger(__name__)

#: `find_submitted` reads at most this many list pages (100 batches each) before giving up
FIND_MAX_PAGES = 50
#: request bodies are streamed in pieces of about this size, never built whole in memory
UPLOAD_CHUNK_BYTES = 256 * 1024

#: the query parameters of the next list page, from this page and its items; None: no more pages
NextPage = Callable[[dict[str, Any], list[dict[str, Any]]], dict[str, str] | None]
#: one parsed JSON result line -> a ResultLine, or None to skip the line
ParseResult = Callable[[Any], ResultLine | None]
#: one item of a batch list -> its summary, or None for an item without a usable id
Summarize = Callable[[dict[str, Any]], ProviderBatchSummary | None]


class ProviderClient:
    """The base of the `BatchProvider` clients: construction, auth, list paging, result
    streaming and cancel. Subclasses set `default_name` and `default_limits` and implement
    `_auth_headers`, `_cancel_path` and the rest of the protocol."""

    default_name: str
    default_limits: ProviderLimits
    #: what `status()` reports as `provider_status` for a batch its create has just made
    created_status: str

    def __init__(
        self,
        http: httpx.AsyncClient,
        base_url: str,
        api_key: Callable[[], str],
        *,
        name: str | None = None,
        limits: ProviderLimits | None = None,
        download_attempts: int = 5,
        retry_delay: float = 0.2,
    ) -> None:
        self.name = name or self.default_name
        self.limits = limits or self.default_limits
        # the key is read at each call, never kept: a rotated key is picked up without a restart
        self._api_key = api_key
        self._http = ProviderHttp(
            self.name,
            http,
            base_url,
            self._auth,
            download_attempts=download_attempts,
            retry_delay=retry_delay,
        )

    @property
    def http(self) -> ProviderHttp:
        """This provider's HTTP edge (base URL, auth, error translation), for the real-time client."""
        return self._http

    def _auth(self) -> dict[str, str]:
        return self._auth_headers(self._api_key())

    def _auth_headers(self, key: str) -> dict[str, str]:
        """The headers that carry `key` on this provider's wire."""
        raise NotImplementedError

    def _cancel_path(self, ref: ProviderBatchRef) -> str:
        raise NotImplementedError

    def _log_created(self, provider_batch_id: object, shard: ShardSubmission) -> None:
        log.info(
            "%s batch %s created for %s",
            self.name,
            provider_batch_id,
            shard.tag,
            extra={"action": "provider_submit", "batch_id": shard.batch_id, "provider": self.name},
        )

    async def _list_pages(
        self,
        path: str,
        *,
        items: str,
        params: Mapping[str, str | int],
        next_page: NextPage,
        max_pages: int = FIND_MAX_PAGES,
    ) -> AsyncGenerator[list[dict[str, Any]], None]:
        """The object items (under key `items`) of each page of a list call, newest first."""
        query: dict[str, str | int] = dict(params)
        for _ in range(max_pages):
            page = await self._http.json("GET", path, params=query, context="list batches")
            found = [item for item in page.get(items) or [] if isinstance(item, dict)]
            yield found
            following = next_page(page, found)
            if following is None:
                return
            query = {**params, **following}
        log.warning("%s batch list cut after %d pages of %s", self.name, max_pages, path)

    async def _summaries(
        self,
        path: str,
        *,
        items: str,
        params: Mapping[str, str | int],
        next_page: NextPage,
        summarize: Summarize,
        since: float | None,
        max_pages: int,
        newest_first: bool = True,
    ) -> AsyncIterator[ProviderBatchSummary]:
        """`list_batches`: the summaries of the listed batches created at or after `since`.

        A newest-first list is left at the first page that reaches past `since`; a list whose
        order is not documented (Gemini) only once a whole page predates it."""
        pages = self._list_pages(path, items=items, params=params, next_page=next_page, max_pages=max_pages)
        async with aclosing(pages):
            async for page in pages:
                read = older = 0
                for item in page:
                    summary = summarize(item)
                    if summary is None:
                        continue
                    read += 1
                    if since is not None and summary.created_at is not None and summary.created_at < since:
                        older += 1
                        continue
                    yield summary
                if older and (newest_first or older == read):
                    return

    async def _result_lines(
        self,
        url: str,
        *,
        part: int,
        start: ResultCursor,
        parse: ParseResult,
        id_field: str = "custom_id",
        headers: Mapping[str, str] | None = None,
        what: str,
        decode: Callable[[bytes], Any] | None = None,
    ) -> AsyncIterator[ResultLine]:
        """The results in one result file (`part` of the batch's results), after `start`; `decode`
        makes each line's record for `parse` (see `ProviderHttp.stream_lines`)."""
        offset, lines = (start.offset, start.lines) if part == start.part else (0, 0)
        async for item in self._http.stream_lines(
            url, start_offset=offset, start_lines=lines, headers=headers, what=what, decode=decode
        ):
            if item.record is None:
                line = unparsed_result(item, id_field)
            else:
                line = parse(item.record)
                if line is not None:
                    line.raw = item.raw
            if line is None:
                continue
            line.position = (part, item.offset, item.lines)
            yield line

    async def cancel(self, ref: ProviderBatchRef) -> None:
        response = await self._http.request(
            "POST", self._cancel_path(ref), allow=(400, 409), context="cancel batch"
        )
        if not response.is_success:
            log.info(
                "%s batch %s already ended; cancel ignored (HTTP %d)",
                self.name,
                ref.provider_batch_id,
                response.status_code,
                extra={"action": "provider_cancel", "provider": self.name},
            )


async def chunked(
    pieces: AsyncIterator[bytes], *, head: bytes = b"", separator: bytes = b"", tail: bytes = b""
) -> AsyncIterator[bytes]:
    """`head`, the pieces joined by `separator`, then `tail`, sent in chunks of about
    UPLOAD_CHUNK_BYTES: a shard streams from the store into a request body at flat memory."""
    buffer = bytearray(head)
    first = True
    async for piece in pieces:
        if not first:
            buffer += separator
        first = False
        buffer += piece
        if len(buffer) >= UPLOAD_CHUNK_BYTES:
            yield bytes(buffer)
            buffer.clear()
    buffer += tail
    if buffer:
        yield bytes(buffer)

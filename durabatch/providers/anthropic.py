"""Anthropic Message Batches API client (docs/providers.md, Anthropic).

Submit is one ``POST /v1/messages/batches`` whose JSON body ``{"requests": [...]}`` is streamed from
the shard (never built whole in memory). Results are one JSONL stream at ``results_url``.

Anthropic batches carry no metadata, so `find_submitted` cannot look for a tag. It matches what the
submit attempt knew before the create call: batches created at or after ``attempt_started_at`` minus
a small clock skew whose request count equals the shard's. If several match, the oldest is kept and
the others are cancelled (they are duplicates of the same submit). Batch ids listed in
``shard.exclude_batch_ids`` (batches other shards already own) are never matched or cancelled.

Status: ``in_progress``/``canceling`` are running; ``ended`` becomes ``cancelled`` if a cancel was
initiated, ``expired`` if requests expired, else ``completed``. Per-request counts other than
``processing`` stay 0 until the batch ends (docs/providers.md, trap 19).
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import Any
from urllib.parse import urlparse

from durabatch.providers.base import (
    ProviderBatchRef,
    ProviderBatchSummary,
    ProviderLimits,
    ProviderState,
    ProviderStatus,
    RequestCounts,
    ResultCursor,
    ResultLine,
    ResultOutcome,
    ShardSubmission,
    token_count,
)
from durabatch.providers.client_base import ProviderClient, chunked
from durabatch.providers.errors import NotFound, ProviderError, ProviderUnavailable
from durabatch.providers.formats import ANTHROPIC_ENDPOINT, check_endpoint
from durabatch.providers.jsonl import dumps_line
from durabatch.providers.wire import as_dict, parse_timestamp

__all__ = [
    "ANTHROPIC_LIMITS",
    "ANTHROPIC_STATES",
    "AnthropicProvider",
    "anthropic_result",
    "anthropic_status",
]

log = logging.getLogger(__name__)

ANTHROPIC_VERSION = "2023-06-01"

ANTHROPIC_LIMITS = ProviderLimits(
    max_requests=100_000,
    # 256 MB (268,435,456 bytes) per batch request body; the rest is for each request's JSON
    # envelope (91 bytes at most, 9.1 MB for 100,000; tests/test_shard_split.py checks the sum)
    max_bytes=250_000_000,
    # the Messages API request limit
    max_line_bytes=32_000_000,
    endpoints=frozenset({ANTHROPIC_ENDPOINT}),
)

#: Anthropic processing_status -> durabatch state; "ended" is refined by `anthropic_status`.
ANTHROPIC_STATES: dict[str, ProviderState] = {
    "in_progress": "in_progress",
    "canceling": "in_progress",
    "ended": "completed",
}
_RESULT_OUTCOMES: dict[str, ResultOutcome] = {
    "succeeded": "succeeded",
    "errored": "failed",
    "canceled": "cancelled",
    "expired": "expired",
}
#: tolerated difference between our clock and Anthropic's when matching created_at
_CLOCK_SKEW_SECONDS = 120
#: how long after create a 404 on the batch is treated as retryable
_FRESH_404_SECONDS = 120


class AnthropicProvider(ProviderClient):
    """`BatchProvider` for Anthropic's Message Batches API."""

    default_name = "anthropic"
    default_limits = ANTHROPIC_LIMITS
    created_status = "in_progress"

    def _auth_headers(self, key: str) -> dict[str, str]:
        return {"x-api-key": key, "anthropic-version": ANTHROPIC_VERSION}

    async def submit(self, shard: ShardSubmission) -> ProviderBatchRef:
        check_endpoint("anthropic", shard.endpoint)

        async def entries() -> AsyncIterator[bytes]:
            async for request in shard.requests():
                yield dumps_line({"custom_id": request.custom_id, "params": request.body})[:-1]

        body = chunked(entries(), head=b'{"requests":[', separator=b",", tail=b"]}")
        batch = await self._http.json(
            "POST",
            "/v1/messages/batches",
            content=body,
            headers={"Content-Type": "application/json"},
            context="create message batch",
        )
        self._log_created(batch.get("id"), shard)
        return ProviderBatchRef(
            provider=self.name,
            provider_batch_id=str(batch["id"]),
            extra={"submitted_at": f"{time.time():.3f}"},
        )

    async def find_submitted(self, shard: ShardSubmission) -> ProviderBatchRef | None:
        not_before = shard.attempt_started_at - _CLOCK_SKEW_SECONDS if shard.attempt_started_at else None
        excluded = shard.exclude_batch_ids
        candidates: list[tuple[float, str]] = []
        pages = self._list_pages(
            "/v1/messages/batches", items="data", params={"limit": 100}, next_page=_next_page
        )
        async with aclosing(pages):
            async for data in pages:
                older_than_window = False
                for batch in data:
                    created = parse_timestamp(batch.get("created_at")) or 0.0
                    if not_before is not None and created < not_before:
                        older_than_window = True  # newest first: everything after this is older still
                        break
                    if str(batch.get("id")) in excluded:
                        continue
                    if _total(
                        batch.get("request_counts") or {}
                    ) == shard.request_count and await self._may_own(batch, shard):
                        candidates.append((created, str(batch["id"])))
                if older_than_window:
                    break
        if not candidates:
            return None
        candidates.sort()
        keep = candidates[0][1]
        for _, duplicate in candidates[1:]:
            log.warning(
                "anthropic batch %s duplicates %s for %s; cancelling it",
                duplicate,
                keep,
                shard.tag,
                extra={
                    "action": "provider_cancel_duplicate",
                    "batch_id": shard.batch_id,
                    "provider": self.name,
                },
            )
            try:
                await self.cancel(ProviderBatchRef(provider=self.name, provider_batch_id=duplicate))
            except ProviderError as exc:
                log.warning("cancelling duplicate anthropic batch %s failed: %s", duplicate, exc)
        return ProviderBatchRef(provider=self.name, provider_batch_id=keep)

    async def _may_own(self, batch: dict[str, Any], shard: ShardSubmission) -> bool:
        """Whether a same-size batch in the time window can be this shard's. An ended batch's
        results name its requests: if its first custom_id is not the shard's, it belongs to someone
        else (another client of the account) and must be neither claimed nor cancelled. A batch
        still running cannot be told apart this way and counts as a candidate."""
        url = batch.get("results_url")
        if batch.get("processing_status") != "ended" or not isinstance(url, str):
            return True
        ref = ProviderBatchRef(provider=self.name, provider_batch_id=str(batch.get("id")))
        first: str | None = None
        lines = self._http.stream_lines(
            self._results_url(url, ref),
            headers={"Accept": "application/binary"},
            what=f"results of {ref.provider_batch_id}",
        )
        try:
            async for item in lines:
                line = anthropic_result(item.record)
                if line is not None:
                    first = line.custom_id
                    break
        finally:
            await _close(lines)  # only the first line is read: end the download now
        if first is None:
            return True
        requests = shard.requests()
        try:
            async for request in requests:
                if request.custom_id == first:
                    return True
            return False
        finally:
            await _close(requests)  # a store cursor: release it now

    def list_batches(self, since: float | None, max_pages: int) -> AsyncIterator[ProviderBatchSummary]:
        """``GET /v1/messages/batches?limit=100&after_id=``, newest first."""
        return self._summaries(
            "/v1/messages/batches",
            items="data",
            params={"limit": 100},
            next_page=_next_page,
            summarize=_summary,
            since=since,
            max_pages=max_pages,
        )

    async def status(self, ref: ProviderBatchRef) -> ProviderStatus:
        try:
            batch = await self._http.json(
                "GET", f"/v1/messages/batches/{ref.provider_batch_id}", context="get batch"
            )
        except NotFound as exc:
            # A batch can be briefly unknown right after create (docs/providers.md, trap 18).
            submitted = float(ref.extra.get("submitted_at") or 0)
            if submitted and time.time() - submitted < _FRESH_404_SECONDS:
                raise ProviderUnavailable(
                    f"batch not visible yet: {exc.message}",
                    provider=self.name,
                    status_code=exc.status_code,
                    request_id=exc.request_id,
                    retry_after=5.0,
                ) from None
            raise
        return anthropic_status(batch)

    async def results(
        self, ref: ProviderBatchRef, status: ProviderStatus, resume_from: ResultCursor | None = None
    ) -> AsyncIterator[ResultLine]:
        start = resume_from or ResultCursor()
        url = status.output_location
        if not url:
            if status.terminal:
                raise ProviderUnavailable(
                    f"batch {ref.provider_batch_id} ended without results_url", provider=self.name
                )
            return
        async for line in self._result_lines(
            self._results_url(url, ref),
            part=0,
            start=start,
            parse=anthropic_result,
            headers={"Accept": "application/binary"},
            what=f"results of {ref.provider_batch_id}",
        ):
            yield line

    def _results_url(self, url: str, ref: ProviderBatchRef) -> str:
        # results_url is absolute. Our API key goes only to the configured origin: a results_url on
        # another host is read from the configured base URL instead (same path).
        base = urlparse(self._http.base_url)
        target = urlparse(url)
        if (target.scheme, target.netloc) != (base.scheme, base.netloc):
            log.warning("anthropic results_url host %s differs from base URL; using base URL", target.netloc)
            return target.path or f"/v1/messages/batches/{ref.provider_batch_id}/results"
        return url

    def _cancel_path(self, ref: ProviderBatchRef) -> str:
        return f"/v1/messages/batches/{ref.provider_batch_id}/cancel"

    async def realtime(self, endpoint: str, body: dict[str, Any]) -> dict[str, Any]:
        check_endpoint("anthropic", endpoint)
        return await self._http.json("POST", endpoint, json_body=body, context=endpoint)


def _next_page(page: dict[str, Any], data: list[dict[str, Any]]) -> dict[str, str] | None:
    return (
        {"after_id": str(page.get("last_id") or data[-1].get("id"))}
        if data and page.get("has_more")
        else None
    )


def _summary(batch: dict[str, Any]) -> ProviderBatchSummary | None:
    if not batch.get("id"):
        return None
    status = anthropic_status(batch)
    return ProviderBatchSummary(
        provider_batch_id=str(batch["id"]),
        state=status.state,
        provider_status=status.provider_status,
        created_at=parse_timestamp(batch.get("created_at")),
    )


def _total(counts: dict[str, Any]) -> int:
    return sum(int(counts.get(k) or 0) for k in ("processing", "succeeded", "errored", "canceled", "expired"))


def anthropic_status(batch: dict[str, Any]) -> ProviderStatus:
    raw = str(batch.get("processing_status"))
    state = ANTHROPIC_STATES.get(raw)
    if state is None:
        log.warning("unknown anthropic processing_status %r, treated as in_progress", raw)
        state = "in_progress"
    counts = batch.get("request_counts") or {}
    succeeded = int(counts.get("succeeded") or 0)
    errored, canceled, expired = (int(counts.get(k) or 0) for k in ("errored", "canceled", "expired"))
    if state == "completed":
        if batch.get("cancel_initiated_at"):
            state = "cancelled"
        elif expired:
            state = "expired"
    return ProviderStatus(
        state=state,
        provider_status=raw,
        counts=RequestCounts(
            total=_total(counts),
            succeeded=succeeded,
            failed=errored + canceled + expired,
            processing=int(counts.get("processing") or 0),
        ),
        output_location=batch.get("results_url"),
    )


def anthropic_result(record: Any) -> ResultLine | None:
    if not isinstance(record, dict) or not isinstance(record.get("custom_id"), str):
        if record is not None:
            log.error("anthropic result line without custom_id skipped")
        return None
    result = as_dict(record.get("result"))
    kind = str(result.get("type"))
    outcome = _RESULT_OUTCOMES.get(kind)
    if outcome is None:
        return ResultLine(
            custom_id=record["custom_id"],
            outcome="failed",
            error={"type": "unknown_result", "message": f"unknown result type {kind!r}"},
        )
    if outcome == "succeeded":
        message = as_dict(result.get("message"))
        usage = message.get("usage") or {}
        cached = token_count(usage.get("cache_read_input_tokens"))
        # input_tokens excludes cache reads and writes; durabatch counts all prompt tokens as input
        total_in = (
            token_count(usage.get("input_tokens"))
            + cached
            + token_count(usage.get("cache_creation_input_tokens"))
        )
        return ResultLine(
            custom_id=record["custom_id"],
            outcome="succeeded",
            status_code=200,
            body=message,
            input_tokens=total_in,
            cached_tokens=cached,
            output_tokens=token_count(usage.get("output_tokens")),
        )
    error: dict[str, Any] | None = None
    if outcome == "failed":
        wrapper = as_dict(result.get("error"))
        # ErrorResponse {"type": "error", "error": {"type", "message"}, "request_id"}
        inner = wrapper.get("error")
        error = inner if isinstance(inner, dict) else wrapper
    else:
        error = {"type": kind}
    return ResultLine(custom_id=record["custom_id"], outcome=outcome, error=error)


async def _close(iterator: AsyncIterator[Any]) -> None:
    """Close an async generator left before its end, so its connection is released at once."""
    close = getattr(iterator, "aclose", None)
    if close is not None:
        await close()

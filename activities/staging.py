"""stage_requests: stream the batch's JSONL into PostgreSQL (COPY), validating every line.

All or nothing: the whole file is staged in one transaction, so a bad line (named by its line
number and field) leaves nothing behind, and a retry after a crash starts clean. Requests are
assigned to shards that respect the provider's limits (count, bytes) as they stream past.

Sources: inline `requests`; `requests_uri="store:"` for requests a client staged before the start
(only the plan is read back); a local path under DURABATCH_REQUESTS_ROOTS; an http(s) URL unless
DURABATCH_REQUESTS_HTTP=false.

Errors: bad input and refused sources are InvalidInput (not retried: a retry reads the same
bytes); an http(s) source answering 5xx, 408 or 429 (its Retry-After honoured), or a dropped or
timed-out connection, is RequestsUnavailable and retried within the STAGE budget, as are
database connection errors (StoreUnavailable). A value PostgreSQL refuses is InvalidInput too.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.deps import ActivityDeps
from activities.errors import invalid_input, to_application_error
from activities.heartbeat import heartbeating
from durabatch import activity_api as api
from durabatch.activity_api import ShardPlan, StageInput, StageResult
from durabatch.providers.http_errors import parse_retry_after
from durabatch.providers.prices import price_of
from durabatch.requests_file import InvalidRequestLine, InvalidRequests, RequestsValidator, capped
from durabatch.staging import (
    STAGED_URI,
    RequestsUriRefused,
    StagingOutcome,
    check_requests_uri,
    estimate_staged,
    file_lines,
    plan_of_staged,
    stage_lines,
)
from durabatch.store import StoreDataError, batches, transaction

__all__ = ["REQUESTS_UNAVAILABLE", "StagingActivities"]

#: ApplicationError type of a transient failure to read an http(s) requests_uri (retried).
REQUESTS_UNAVAILABLE = "RequestsUnavailable"

_RETRYABLE_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})


def _unavailable(message: str, retry_after: float | None = None) -> ApplicationError:
    delay = timedelta(seconds=retry_after) if retry_after else None
    return ApplicationError(message, type=REQUESTS_UNAVAILABLE, next_retry_delay=delay)


async def _url_lines(http: httpx.AsyncClient, url: str) -> AsyncIterator[tuple[int, bytes]]:
    try:
        async with http.stream("GET", url) as response:
            status = response.status_code
            if status in _RETRYABLE_STATUS:
                raise _unavailable(
                    f"requests_uri {url} answered HTTP {status}; retrying",
                    parse_retry_after(response.headers),
                )
            if status >= 400:
                hint = {
                    401: "the server wants credentials",
                    403: "the server refuses access",
                    404: "no such file",
                    410: "the file is gone",
                }.get(status, "the server refused the request")
                raise invalid_input(f"requests_uri {url} answered HTTP {status} ({hint})")
            pending = b""
            line_no = 0
            async for chunk in response.aiter_bytes():
                pending += chunk
                *complete, pending = pending.split(b"\n")
                for line in complete:
                    line_no += 1
                    yield line_no, line
            if pending:
                yield line_no + 1, pending
    except httpx.TransportError as exc:  # timeouts, resets, refused connections, cut downloads
        raise _unavailable(f"requests_uri {url}: {type(exc).__name__}: {exc}; retrying") from None


async def _inline_lines(items: list[dict[str, Any]]) -> AsyncIterator[tuple[int, Any]]:
    for i, item in enumerate(items, start=1):
        yield i, item


class StagingActivities:
    def __init__(self, deps: ActivityDeps) -> None:
        self._deps = deps

    @activity.defn(name=api.activity_name(api.stage_requests))
    async def stage_requests(self, inp: StageInput) -> StageResult:
        async with heartbeating():
            try:
                outcome = await self._stage_requests(inp)
            except (InvalidRequestLine, InvalidRequests, RequestsUriRefused) as exc:
                raise invalid_input(str(exc)) from None
            except StoreDataError as exc:
                # The validator refuses what PostgreSQL cannot store; should a value slip past it,
                # a retry would COPY the same bytes again, so this is not retried either.
                raise to_application_error(exc) from None
        self._deps.metrics.batch_started(inp.provider)
        estimate = outcome.estimate
        if estimate is None and inp.estimate_cost:
            estimate = await estimate_staged(
                self._deps.pool, inp.batch_id, inp.provider, inp.endpoint, outcome.shards
            )
        cost = (
            estimate.cost(price_of(inp.provider, outcome.model, self._deps.settings.prices_file))
            if estimate
            else None
        )
        return StageResult(
            request_count=outcome.request_count,
            byte_size=outcome.byte_size,
            model=outcome.model,
            shards=[
                ShardPlan(shard=s.shard, request_count=s.request_count, byte_size=s.byte_size)
                for s in outcome.shards
            ],
            estimated_input_tokens=estimate.input_tokens if estimate else None,
            max_output_tokens=estimate.max_output_tokens if estimate else None,
            cost_low_usd=float(cost.low_usd) if cost else None,
            cost_high_usd=float(cost.high_usd) if cost else None,
        )

    async def _stage_requests(self, inp: StageInput) -> StagingOutcome:
        # The batch row is written first, outside the staging transaction, so that a batch whose
        # input is refused (endpoint, source or any line) still has a row to end `failed` on:
        # finalize_batch needs it.
        await batches.create_batch(
            self._deps.pool,
            batch_id=inp.batch_id,
            workflow_id=inp.workflow_id,
            provider=inp.provider,
            endpoint=inp.endpoint,
            model=inp.model,
            metadata=inp.metadata,
        )
        limits = capped(
            self._deps.provider(inp.provider).limits, inp.max_requests_per_shard, inp.max_bytes_per_shard
        )
        validator = RequestsValidator(inp.provider, inp.endpoint, inp.model, limits)
        if inp.requests is None and inp.requests_uri == STAGED_URI:
            async with transaction(self._deps.pool) as conn:
                staged = await plan_of_staged(conn, inp.batch_id, limits)
            if staged is None:
                raise InvalidRequests(
                    "requests_uri",
                    f"{STAGED_URI!r} but no requests are staged for batch {inp.batch_id!r}; stage them "
                    "with `durabatch submit FILE` or `BatchClient.start(requests_path=...)`",
                )
            return staged
        source, where = self._source(inp)
        async with transaction(self._deps.pool) as conn:
            outcome = await stage_lines(
                conn, inp.batch_id, validator, source, source=where, progress=activity.heartbeat
            )
            await batches.set_status(
                conn, inp.batch_id, "pending", model=outcome.model, request_count=outcome.request_count
            )
        # No ANALYZE here: see durabatch.store.requests.copy_requests.
        return outcome

    def _source(self, inp: StageInput) -> tuple[AsyncIterator[tuple[int, Any]], str]:
        if inp.requests is not None:
            return _inline_lines(inp.requests), "requests"
        uri = inp.requests_uri or ""
        settings = self._deps.settings
        target = check_requests_uri(
            uri, roots=settings.requests_root_paths(), http_allowed=settings.requests_http
        )
        where = f"requests_uri {uri!r}"
        if isinstance(target, str):
            return _url_lines(self._deps.http, target), where
        if not target.is_file():
            raise InvalidRequests(where, "no such file on the worker")
        return file_lines(Path(target)), where

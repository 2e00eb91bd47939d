"""run_realtime_chunk: a range of a shard's requests through the provider's synchronous endpoint.

The range is read from the store page by page; a request that already has a result for the round
is skipped, so a retry after a crash or a cancel never sends a finished request again. The rest go
to `concurrency` workers that call the provider under the chunk's limits (`RealtimeClient`: rpm,
tpm, Retry-After and the rate-limit headers; chunks a worker runs at once for one provider and the
same rpm / tpm share one budget) and write each result as it arrives, in the same rows
and columns ingest writes (the answer kept as the provider's batch output line), costed at
real-time prices: twice the batch price. A result is committed before its worker takes the next
request, so at most `concurrency` answers are lost (and asked again) when an attempt dies. The
activity heartbeats the number of requests done; it returns counts only.

A request the provider refuses (400, 404, 413, 422) gets a `failed` result with the provider's
error, as in a batch; an authentication or quota error, or a 429 / 5xx that outlasts the client's
retries, fails the attempt (retryable or not, per `activities/errors.py`) and keeps what it wrote.
"""

from __future__ import annotations

import asyncio
import functools
from typing import Any

from temporalio import activity

from activities.deps import ActivityDeps
from activities.errors import invalid_input, to_application_error
from activities.result_rows import result_row
from durabatch import activity_api as api
from durabatch.activity_api import RealtimeChunkInput, RealtimeChunkResult
from durabatch.providers import errors as perr
from durabatch.providers.base import ResultLine
from durabatch.providers.client_base import ProviderClient
from durabatch.providers.formats import model_of
from durabatch.providers.prices import ModelPrice, cost_of, realtime_price_of
from durabatch.providers.ratelimit import RateLimiter
from durabatch.providers.realtime import CallLimits, RealtimeClient
from durabatch.store import errors as serr
from durabatch.store import requests, results
from durabatch.store.pool import connection

__all__ = ["RealtimeActivities"]

#: calls in flight when neither the chunk nor the batch says
DEFAULT_CONCURRENCY = 8
#: a heartbeat at least this often, also while every worker waits out a long Retry-After
_HEARTBEAT_SECONDS = 5.0
_STOP = None


class _Tally:
    def __init__(self) -> None:
        self.requests = 0
        self.skipped = 0
        self.written = 0
        self.succeeded = 0
        self.failed = 0
        self.input_tokens = 0
        self.output_tokens = 0
        self.cached_tokens = 0

    @property
    def done(self) -> int:
        return self.skipped + self.written

    def result(self) -> RealtimeChunkResult:
        return RealtimeChunkResult(
            requests=self.requests,
            skipped=self.skipped,
            written=self.written,
            succeeded=self.succeeded,
            failed=self.failed,
            input_tokens=self.input_tokens,
            output_tokens=self.output_tokens,
            cached_tokens=self.cached_tokens,
        )


class RealtimeActivities:
    def __init__(self, deps: ActivityDeps) -> None:
        self._deps = deps
        # one budget per provider and limits, shared by every chunk this worker runs at once: two
        # chunks side by side must not each spend the provider's whole rpm
        self._limiters: dict[tuple[str, int | None, int | None], RateLimiter] = {}

    @activity.defn(name=api.activity_name(api.run_realtime_chunk))
    async def run_realtime_chunk(self, inp: RealtimeChunkInput) -> RealtimeChunkResult:
        client = self._client(inp)
        tally = _Tally()
        queue: asyncio.Queue[tuple[str, dict[str, Any]] | None] = asyncio.Queue(
            maxsize=2 * client.limits.concurrency
        )
        prices: dict[str | None, ModelPrice | None] = {}
        try:
            async with asyncio.TaskGroup() as group:
                workers = [
                    group.create_task(self._work(inp, client, queue, prices, tally))
                    for _ in range(client.limits.concurrency)
                ]
                beat = group.create_task(_beat(tally))
                await self._feed(inp, queue, tally)
                for _ in workers:
                    await queue.put(_STOP)
                await asyncio.wait(workers)
                beat.cancel()
        except BaseExceptionGroup as group_error:
            raise _failure(group_error) from None
        activity.heartbeat(tally.done)
        activity.logger.info(
            "real-time chunk done",
            extra={
                "batch_id": inp.batch_id,
                "line_from": inp.line_from,
                "line_to": inp.line_to,
                "written": tally.written,
                "skipped": tally.skipped,
            },
        )
        return tally.result()

    def _client(self, inp: RealtimeChunkInput) -> RealtimeClient:
        provider = self._deps.provider(inp.provider)
        if not isinstance(provider, ProviderClient):
            raise invalid_input(f"{inp.provider}: real-time calls need an HTTP provider client")
        rpm, tpm = self._deps.settings.realtime_limits(inp.provider)
        try:
            limits = CallLimits(
                concurrency=inp.limits.concurrency or DEFAULT_CONCURRENCY,
                rpm=inp.limits.rpm if inp.limits.rpm is not None else rpm,
                tpm=inp.limits.tpm if inp.limits.tpm is not None else tpm,
            )
            key = (inp.provider, limits.rpm, limits.tpm)
            if key not in self._limiters:
                self._limiters[key] = RateLimiter(limits.rpm, limits.tpm)
            return RealtimeClient(
                provider, inp.endpoint, limits, model=inp.model, limiter=self._limiters[key]
            )
        except ValueError as exc:
            # an endpoint the provider has no synchronous form of, or limits below 1: no retry helps
            raise invalid_input(f"{inp.provider} real-time chunk: {exc}") from None

    async def _feed(
        self, inp: RealtimeChunkInput, queue: asyncio.Queue[tuple[str, dict[str, Any]] | None], tally: _Tally
    ) -> None:
        """Hand the range's unfinished requests to the workers, in line order."""
        async for _, custom_id, body in requests.iter_range(
            self._deps.pool, inp.batch_id, inp.shard, inp.round, inp.line_from, inp.line_to
        ):
            tally.requests += 1
            if body is None:
                tally.skipped += 1
                continue
            await queue.put((custom_id, body))

    async def _work(
        self,
        inp: RealtimeChunkInput,
        client: RealtimeClient,
        queue: asyncio.Queue[tuple[str, dict[str, Any]] | None],
        prices: dict[str | None, ModelPrice | None],
        tally: _Tally,
    ) -> None:
        while (item := await queue.get()) is not None:
            custom_id, body = item
            line = await client.call(custom_id, body)
            model = inp.model or model_of(inp.provider, body)
            if model not in prices:
                prices[model] = realtime_price_of(inp.provider, model, self._deps.settings.prices_file)
            await self._write(inp, line, prices[model], tally)

    async def _write(
        self, inp: RealtimeChunkInput, line: ResultLine, price: ModelPrice | None, tally: _Tally
    ) -> None:
        cost_fn = None if price is None else functools.partial(cost_of, price)
        record = result_row(inp.batch_id, inp.round, line, line.raw, cost_fn)
        try:
            async with connection(self._deps.pool) as conn:
                await results.write_results(conn, inp.batch_id, [record])
        except serr.StoreConflict:
            # another attempt (a zombie of this one) wrote this request's result first: it stands
            activity.logger.warning(
                "real-time result already written",
                extra={"batch_id": inp.batch_id, "custom_id": line.custom_id},
            )
            tally.skipped += 1
            return
        tally.written += 1
        if line.outcome == "succeeded":
            tally.succeeded += 1
        else:
            tally.failed += 1
        tally.input_tokens += record[7]
        tally.output_tokens += record[8]
        tally.cached_tokens += record[9]
        activity.heartbeat(tally.done)


async def _beat(tally: _Tally) -> None:
    # Temporal throttles heartbeats; this one only keeps a chunk that is all waiting alive
    while True:
        await asyncio.sleep(_HEARTBEAT_SECONDS)
        activity.heartbeat(tally.done)


def _failure(group: BaseExceptionGroup[Any]) -> BaseException:
    """The one error a failed attempt reports: the first provider or store error, as Temporal's."""
    leaves: list[BaseException] = []

    def walk(exc: BaseException) -> None:
        if isinstance(exc, BaseExceptionGroup):
            for inner in exc.exceptions:
                walk(inner)
        else:
            leaves.append(exc)

    walk(group)
    for exc in leaves:
        if isinstance(exc, perr.ProviderError | serr.StoreError):
            return to_application_error(exc)
    return leaves[0]

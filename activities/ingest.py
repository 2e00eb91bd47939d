"""ingest_results: stream a terminal provider batch's results into PostgreSQL.

The result stream is read line by line and written in chunks with COPY straight into `results`;
while one chunk is being written the next is downloaded and parsed. After each chunk commits the
activity heartbeats the provider's cursor, so a retry after a crash resumes where the last
committed chunk ended. Exactly-once comes from the unique key: each attempt first reads which
requests of the shard still lack a result and offers rows only for those, so overlap (a heartbeat
older than the last commit) writes nothing twice. Requests of the shard that have no result
afterwards are given one from the shard's final state.

Lines that cannot be a result never wedge or retry: a result for a custom_id not in the shard and a
second result for one id are logged, counted and dropped (the first result wins); a line that is
not JSON fails the request it names, with the reason, or is logged and counted if it names none.
"""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal
from typing import Any

from temporalio import activity

from activities.deps import ActivityDeps
from activities.errors import to_application_error
from activities.result_rows import CostFn, result_row
from durabatch import activity_api as api
from durabatch.activity_api import IngestInput, IngestResult
from durabatch.providers import errors as perr
from durabatch.providers.base import ProviderStatus, ResultCursor, ResultLine
from durabatch.providers.prices import price_of, stored_cost
from durabatch.results_format import provider_line
from durabatch.store import batches, provider_batches, results
from durabatch.store.pool import connection, transaction

__all__ = ["IngestActivities"]

#: a COPY is sent at this many rows or this many bytes of lines, whichever comes first: each COPY
#: commits (one WAL flush), so fewer is faster, while two chunks (one written, one filling) are
#: all the memory ingest holds, whatever the size of the file or of its lines. 8 MB: with 4 KB
#: lines (200 MB for 50,000 results) 2 MB chunks made 100 commits and ingest 20% slower, for 5 MiB
#: less peak RSS
_CHUNK_ROWS = 5000
_CHUNK_BYTES = 8 * 1024 * 1024
_YIELD_EVERY = 64
#: (input, cached, output) tokens -> the stored cost of a succeeded result
_LOGGED_DROPS = 20

#: what a request with no result line gets, by the provider batch's final state
_UNRESOLVED = {
    "completed": ("failed", "missing_result", "the provider returned no result for this request"),
    "failed": ("failed", "batch_failed", "the provider failed the batch"),
    "expired": ("expired", "batch_expired", "the provider batch expired before this request ran"),
    "cancelled": ("cancelled", "batch_cancelled", "the batch was cancelled before this request ran"),
}


class _Tally:
    def __init__(self) -> None:
        self.lines = 0
        self.written = 0
        self.strays = 0
        self.duplicates = 0
        self.unreadable = 0
        # sums over the rows this attempt wrote, as `results.shard_totals` would count them
        self.succeeded = 0
        self.input_tokens = 0
        self.output_tokens = 0
        self.cached_tokens = 0
        self.cost = Decimal(0)
        self.cost_unknown = 0

    def add(self, rows: list[tuple[Any, ...]]) -> None:
        """Count written rows (shaped as results.RESULT_COLUMNS)."""
        self.input_tokens += sum(row[7] for row in rows)
        self.output_tokens += sum(row[8] for row in rows)
        self.cached_tokens += sum(row[9] for row in rows)
        costs = [row[10] for row in rows if row[3] == "succeeded"]
        self.succeeded += len(costs)
        known = [cost for cost in costs if cost is not None]
        self.cost_unknown += len(costs) - len(known)
        self.cost += sum(known, Decimal(0))

    def totals(self, resolved: int) -> results.ShardTotals:
        """The shard's totals when its rows are exactly the `written` ones plus `resolved` rows
        that reconcile gave an outcome other than success (no tokens, no cost)."""
        return results.ShardTotals(
            succeeded=self.succeeded,
            not_succeeded=self.written - self.succeeded + resolved,
            input_tokens=self.input_tokens,
            output_tokens=self.output_tokens,
            cached_tokens=self.cached_tokens,
            cost_usd=None if self.cost_unknown else float(self.cost),
        )


class IngestActivities:
    def __init__(self, deps: ActivityDeps) -> None:
        self._deps = deps

    @activity.defn(name=api.activity_name(api.ingest_results))
    async def ingest_results(self, inp: IngestInput) -> IngestResult:
        provider = self._deps.provider(inp.provider)
        ref = inp.shard.require_ref()
        details = activity.info().heartbeat_details
        resume = ResultCursor.model_validate(details[0]) if details else None
        price = price_of(inp.provider, inp.model, self._deps.settings.prices_file)
        # looked up once per file: `cost_usd` would copy the price table on every line
        cost = None if price is None else stored_cost(price)
        tally = _Tally()
        started = time.monotonic()
        try:
            status = await provider.status(ref)
            progress = await results.shard_progress(
                self._deps.pool, inp.batch_id, inp.shard.shard, inp.shard.round
            )
            await self._stream(inp, provider.results(ref, status, resume), progress, cost, tally)
        except perr.ProviderError as exc:
            raise to_application_error(exc) from exc
        outcome, code, message = _UNRESOLVED.get(status.state, _UNRESOLVED["completed"])
        if status.state == "failed" and status.failure_message:
            message = f"{status.failure_code or 'batch_failed'}: {status.failure_message}"
        if status.state == "cancelled" and inp.expiry_reason:
            outcome, code, message = "expired", "max_age", inp.expiry_reason
        missing = sorted(progress.pending)
        resolved = 0
        if missing:
            async with transaction(self._deps.pool) as conn:
                # Right after the bulk load the new rows have no statistics; the planner's guess for
                # reconcile's joins is then a nested loop that scans the batch's results once per
                # request (minutes at 50,000). Hash joins are linear whatever the statistics say.
                await conn.execute("SET LOCAL enable_nestloop = off")
                resolved = await batches.reconcile(
                    conn,
                    inp.batch_id,
                    outcome=outcome,
                    code=code,
                    reason=message,
                    shard=inp.shard.shard,
                    custom_ids=missing,
                )
        await self._record_ingested(inp, status)
        if not progress.done and resolved == len(missing):
            # Every result row of the shard is one this attempt wrote (nothing came before it and
            # no other attempt wrote any of the missing ones): the sums kept while writing are the
            # shard's totals, with no query over the rows just loaded.
            shard_totals = tally.totals(resolved)
        else:
            shard_totals = await results.shard_totals(
                self._deps.pool, inp.batch_id, inp.shard.shard, inp.shard.round
            )
        elapsed = time.monotonic() - started
        self._deps.metrics.ingest_lines(tally.lines, elapsed, provider=inp.provider)
        if tally.strays or tally.duplicates or tally.unreadable:
            activity.logger.warning(
                "result lines dropped",
                extra={
                    "batch_id": inp.batch_id,
                    "stray_results": tally.strays,
                    "duplicate_results": tally.duplicates,
                    "unreadable_lines": tally.unreadable,
                },
            )
        activity.logger.info(
            "ingested results",
            extra={
                "batch_id": inp.batch_id,
                "lines": tally.lines,
                "rows_written": tally.written,
                "lines_per_second": round(tally.lines / max(elapsed, 1e-6)),
            },
        )
        return IngestResult(
            lines=tally.lines,
            succeeded=shard_totals.succeeded,
            failed=shard_totals.not_succeeded,
            input_tokens=shard_totals.input_tokens,
            output_tokens=shard_totals.output_tokens,
            cached_tokens=shard_totals.cached_tokens,
            cost_usd=shard_totals.cost_usd,
        )

    async def _stream(
        self,
        inp: IngestInput,
        lines: Any,
        progress: results.ShardProgress,
        cost: CostFn | None,
        tally: _Tally,
    ) -> None:
        """Parse into chunks while the previous chunk is being written (one write in flight)."""
        written: set[str] = set()
        chunk: list[tuple[Any, ...]] = []
        writing: asyncio.Task[None] | None = None
        position = (0, 0, 0)
        pending = progress.pending
        done = progress.done
        pending_bytes = 0
        count = 0
        try:
            async for line in lines:
                count += 1
                if writing is not None and not count % _YIELD_EVERY:
                    # A downloaded chunk parses without ever suspending, so the write in flight
                    # (which waits for the socket to drain) would only move when parsing stops.
                    await asyncio.sleep(0)
                position = line.position
                custom_id = line.custom_id
                if custom_id in pending:
                    pending.discard(custom_id)
                    written.add(custom_id)
                    row = self._record(inp, line, cost)
                    chunk.append(row)
                    if row[5] is not None:
                        pending_bytes += len(row[5])
                elif custom_id in written:
                    tally.duplicates += 1
                    self._dropped(inp, line, "a second result for this custom_id (the first is kept)", tally)
                elif custom_id not in done:
                    if line.error is not None and line.error.get("code") == "invalid_result_line":
                        tally.unreadable += 1
                    else:
                        tally.strays += 1
                    self._dropped(inp, line, "no request of this shard has this custom_id", tally)
                # else: written by an earlier attempt; resuming from an older heartbeat re-reads it
                if len(chunk) >= _CHUNK_ROWS or pending_bytes >= _CHUNK_BYTES:
                    if writing is not None:
                        await writing
                    writing = asyncio.create_task(self._flush(inp, chunk, position, tally))
                    chunk, pending_bytes = [], 0
            if writing is not None:
                await writing
                writing = None
            if chunk:
                await self._flush(inp, chunk, None, tally)
        finally:
            tally.lines += count
            if writing is not None and not writing.done():
                writing.cancel()

    def _dropped(self, inp: IngestInput, line: ResultLine, why: str, tally: _Tally) -> None:
        # the first few by name; a hostile file of a million strays is one line of counts at the end
        if tally.strays + tally.duplicates + tally.unreadable > _LOGGED_DROPS:
            return
        activity.logger.warning(
            "result line dropped: %s",
            why,
            # ascii(): a custom_id that is not a request's may hold NUL or lone surrogates
            extra={
                "batch_id": inp.batch_id,
                "custom_id": ascii(line.custom_id[:200]),
                "line": line.position[2],
            },
        )

    def _record(self, inp: IngestInput, line: ResultLine, cost_fn: CostFn | None) -> tuple[Any, ...]:
        raw = line.raw
        if line.outcome == "cancelled" and inp.expiry_reason:
            line.outcome = "expired"
            line.error = {"code": "max_age", "message": inp.expiry_reason, "provider_error": line.error}
            # the stored outcome is no longer the line's: readers build the line from the columns
            raw = None
        elif raw is None and line.body is not None:
            # A result that was not a line of a file (Gemini's inline responses): its line is made
            # in the provider's output-file shape, as readers would build it anyway.
            raw = provider_line(
                inp.provider,
                {
                    "custom_id": line.custom_id,
                    "outcome": line.outcome,
                    "status_code": line.status_code,
                    "body": line.body,
                    "error": line.error,
                    "line": None,
                },
            )
        # the cost is rounded as the numeric(18, 10) column stores it, so the sums kept in
        # memory are the sums of the stored values
        return result_row(inp.batch_id, inp.shard.round, line, raw, cost_fn)

    async def _flush(
        self,
        inp: IngestInput,
        chunk: list[tuple[Any, ...]],
        position: tuple[int, int, int] | None,
        tally: _Tally,
    ) -> None:
        async with connection(self._deps.pool) as conn:
            tally.written += await results.write_results(conn, inp.batch_id, chunk)
        tally.add(chunk)
        if position is not None:
            # Only after the rows are committed: a resume never skips an unwritten line.
            part, offset, lines = position
            activity.heartbeat(ResultCursor(part=part, offset=offset, lines=lines).model_dump())

    async def _record_ingested(self, inp: IngestInput, status: ProviderStatus) -> None:
        await provider_batches.record_status(
            self._deps.pool,
            batch_id=inp.batch_id,
            shard=inp.shard.shard,
            round_=inp.shard.round,
            provider_status=status.provider_status,
            terminal=True,
            output_file_id=status.output_location,
            error_file_id=status.error_location,
            ingested=True,
        )

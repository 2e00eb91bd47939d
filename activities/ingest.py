"""ingest_results: stream a terminal provider batch's results into PostgreSQL.

The result stream is read line by line and written in chunks (COPY + upsert). After each chunk the
activity heartbeats the provider's cursor, so a retry after a crash resumes where the last chunk
ended; rows already present are left alone, so overlap writes nothing twice. Requests of the shard
that have no result afterwards are given one from the shard's final state.
"""

from __future__ import annotations

import time
from typing import Any

from temporalio import activity

from activities.deps import ActivityDeps
from activities.errors import to_application_error
from activities.submission import ref_of
from durabatch.models import IngestInput, IngestResult
from durabatch.providers import errors as perr
from durabatch.providers.base import ProviderStatus, ResultCursor, ResultLine
from durabatch.providers.prices import cost_usd
from durabatch.store import batches, provider_batches, results

__all__ = ["IngestActivities"]

_CHUNK = 1000

#: what a request with no result line gets, by the provider batch's final state
_UNRESOLVED = {
    "completed": ("failed", "missing_result", "the provider returned no result for this request"),
    "failed": ("failed", "batch_failed", "the provider failed the batch"),
    "expired": ("expired", "batch_expired", "the provider batch expired before this request ran"),
    "cancelled": ("cancelled", "batch_cancelled", "the batch was cancelled before this request ran"),
}


class IngestActivities:
    def __init__(self, deps: ActivityDeps) -> None:
        self._deps = deps

    @activity.defn(name="ingest_results")
    async def ingest_results(self, inp: IngestInput) -> IngestResult:
        provider = self._deps.provider(inp.provider)
        ref = ref_of(inp.provider, inp.shard)
        details = activity.info().heartbeat_details
        resume = ResultCursor.model_validate(details[0]) if details else None
        try:
            status = await provider.status(ref)
            lines = 0
            started = time.monotonic()
            chunk: list[tuple[Any, ...]] = []
            async for line in provider.results(ref, status, resume):
                chunk.append(self._record(inp, line))
                if len(chunk) >= _CHUNK:
                    lines += await self._flush(inp, chunk, line.cursor)
            if chunk:
                lines += await self._flush(inp, chunk, None)
        except perr.ProviderError as exc:
            raise to_application_error(exc) from exc
        outcome, code, message = _UNRESOLVED.get(status.state, _UNRESOLVED["completed"])
        if status.state == "failed" and status.failure_message:
            message = f"{status.failure_code or 'batch_failed'}: {status.failure_message}"
        if status.state == "cancelled" and inp.expiry_reason:
            outcome, code, message = "expired", "max_age", inp.expiry_reason
        async with self._deps.pool.acquire() as conn:
            await batches.reconcile(
                conn, inp.batch_id, outcome=outcome, code=code, reason=message, shard=inp.shard.shard
            )
        await self._record_ingested(inp, status)
        shard_totals = await results.shard_totals(
            self._deps.pool, inp.batch_id, inp.shard.shard, inp.shard.round
        )
        elapsed = time.monotonic() - started
        self._deps.metrics.ingest_lines(lines, elapsed, provider=inp.provider)
        activity.logger.info(
            "ingested results",
            extra={
                "batch_id": inp.batch_id,
                "lines": lines,
                "lines_per_second": round(lines / max(elapsed, 1e-6)),
            },
        )
        return IngestResult(
            lines=lines,
            succeeded=shard_totals.succeeded,
            failed=shard_totals.not_succeeded,
            input_tokens=shard_totals.input_tokens,
            output_tokens=shard_totals.output_tokens,
            cached_tokens=shard_totals.cached_tokens,
            cost_usd=shard_totals.cost_usd,
        )

    def _record(self, inp: IngestInput, line: ResultLine) -> tuple[Any, ...]:
        if line.outcome == "cancelled" and inp.expiry_reason:
            line.outcome = "expired"
            line.error = {"code": "max_age", "message": inp.expiry_reason, "provider_error": line.error}
        cost = (
            cost_usd(
                inp.provider,
                inp.model,
                line.input_tokens,
                line.cached_tokens,
                line.output_tokens,
                overrides_file=self._deps.settings.prices_file,
            )
            if line.outcome == "succeeded"
            else None
        )
        return (
            inp.batch_id,
            line.custom_id,
            inp.shard.round,
            line.outcome,
            line.status_code,
            line.body,
            line.error,
            line.input_tokens,
            line.output_tokens,
            line.cached_tokens,
            cost,
        )

    async def _flush(
        self, inp: IngestInput, chunk: list[tuple[Any, ...]], cursor: ResultCursor | None
    ) -> int:
        async with self._deps.pool.acquire() as conn:
            await results.write_results(conn, inp.batch_id, inp.shard.shard, inp.shard.round, chunk)
        written = len(chunk)
        chunk.clear()
        if cursor is not None:
            # Only after the rows are committed: a resume never skips an unwritten line.
            activity.heartbeat(cursor.model_dump())
        return written

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

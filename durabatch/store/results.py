"""Queries on `results`: bulk writes straight into the table with COPY, and reads.

A result row keeps the provider's line as text in `line` (see migration 0003); `body` is only set
on rows written before it. Writes are exactly-once by the unique key (batch_id, custom_id, round):
the ingest activity first asks `shard_progress` which requests still lack a result and copies
rows only for those, so a retried ingest never offers a row twice. Two attempts racing (a zombie
activity) make one COPY fail on the unique key and retry, and the retry skips what the other wrote.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg

from durabatch.store.errors import store_errors
from durabatch.store.pool import Conn, Executor, transaction
from durabatch.store.tracing import query_span, traced

__all__ = [
    "RESULT_COLUMNS",
    "ShardProgress",
    "ShardTotals",
    "iter_results",
    "shard_progress",
    "shard_totals",
    "write_results",
]

RESULT_COLUMNS = (
    "batch_id",
    "custom_id",
    "round",
    "outcome",
    "status_code",
    "line",
    "error",
    "input_tokens",
    "output_tokens",
    "cached_tokens",
    "cost_usd",
)


@dataclass(frozen=True)
class ShardTotals:
    succeeded: int
    not_succeeded: int
    input_tokens: int
    output_tokens: int
    cached_tokens: int
    cost_usd: float | None


@dataclass
class ShardProgress:
    """The custom_ids of one shard and round: those still without a result, and those with one."""

    pending: set[str]
    done: set[str]


@traced
async def shard_progress(conn: Executor, batch_id: str, shard: int, round_: int) -> ShardProgress:
    """Which requests of the shard still need a result. One scan of the shard, once per ingest
    attempt: cheaper than joining every chunk against the shard's requests."""
    if isinstance(conn, asyncpg.Pool):
        async with conn.acquire() as borrowed:
            return await _shard_progress(borrowed, batch_id, shard, round_)
    return await _shard_progress(conn, batch_id, shard, round_)


async def _shard_progress(conn: Conn, batch_id: str, shard: int, round_: int) -> ShardProgress:
    async with conn.transaction(readonly=True):
        # a retried attempt finds the rows its predecessor wrote, without statistics yet: see
        # `shard_totals` for the nested loop this avoids
        await conn.execute("SET LOCAL enable_nestloop = off")
        # Two arrays in one row, not a row per request: the driver decodes a text[] in C, a row
        # at a time costs Python objects per row (a tenth of a 50,000-result ingest, profiled).
        # The arrays are dropped once the sets hold the ids, so the ids are held only once.
        row = await conn.fetchrow(
            """SELECT COALESCE(array_agg(r.custom_id) FILTER (WHERE x.custom_id IS NULL), '{}') AS pending,
                      COALESCE(array_agg(r.custom_id) FILTER (WHERE x.custom_id IS NOT NULL), '{}') AS done
                 FROM requests r
                 LEFT JOIN results x ON x.batch_id = r.batch_id AND x.custom_id = r.custom_id
                                    AND x.round = r.round
                WHERE r.batch_id = $1 AND r.shard = $2 AND r.round = $3""",
            batch_id,
            shard,
            round_,
        )
    assert row is not None
    return ShardProgress(pending=set(row["pending"]), done=set(row["done"]))


@traced
async def write_results(conn: Conn, batch_id: str, records: Sequence[tuple[Any, ...]]) -> int:
    """COPY result rows (shaped as RESULT_COLUMNS; `error` a Python object, `line` text) into
    `results` in one statement, so a chunk is written whole or not at all.

    The caller offers only rows of requests that `shard_progress` reported pending, each once; a
    row already present fails the whole COPY on the unique key (StoreConflict),
    which the activity retries from a fresh `shard_progress`. `batch_id` names the span.
    """
    await conn.copy_records_to_table("results", records=records, columns=list(RESULT_COLUMNS))
    return len(records)


async def iter_results(
    pool: asyncpg.Pool,
    batch_id: str,
    *,
    outcome: str | None = None,
    all_rounds: bool = False,
    chunk: int = 2000,
) -> AsyncIterator[asyncpg.Record]:
    """Each request's final-round result joined with its request, in line order, `chunk` rows fetched
    at a time through one server-side cursor. With `all_rounds`, every attempt's row (a retried
    request has one per round), in line order and then round order; `final` marks the final one.

    One query, so the join is planned and run once (a hash join: linear in the batch's size); a
    query per chunk would join the whole batch again for every chunk. Nested loops are off for the
    same reason as in `shard_totals`: without statistics the planner's nested loop scans every
    result of the batch for each request.
    """
    async with transaction(pool, readonly=True) as conn:
        with store_errors():
            await conn.execute("SET LOCAL enable_nestloop = off")
            cursor = await conn.cursor(
                """SELECT r.line_no, r.custom_id, x.round, x.outcome, x.status_code, x.body, x.line, x.error,
                          x.input_tokens, x.output_tokens, x.cached_tokens, x.cost_usd,
                          x.round = r.round AS final
                     FROM requests r
                     JOIN results x ON x.batch_id = r.batch_id AND x.custom_id = r.custom_id
                                   AND ($3 OR x.round = r.round)
                    WHERE r.batch_id = $1 AND x.batch_id = $1 AND ($2::text IS NULL OR x.outcome = $2)
                    ORDER BY r.line_no, x.round""",
                batch_id,
                outcome,
                all_rounds,
            )
        while True:
            # one span per fetch, closed before yielding: a span open across a yield would leak
            # its context into the consumer
            with query_span("results.iter_results", batch_id):
                rows = await cursor.fetch(chunk)
            if not rows:
                return
            for row in rows:
                yield row


@traced
async def shard_totals(conn: Executor, batch_id: str, shard: int, round_: int) -> ShardTotals:
    """Outcomes, tokens and cost of one shard's results in one round.

    Runs right after a bulk load, before autovacuum has given the new rows statistics: the planner
    then guesses one row per side and picks a nested loop whose inner side scans every result of
    the batch per request (seconds for 5,000 requests, minutes for 50,000). A hash join is linear
    whatever the statistics say, so nested loops are switched off for this one query.
    """
    if isinstance(conn, asyncpg.Pool):
        async with conn.acquire() as borrowed:
            return await _shard_totals(borrowed, batch_id, shard, round_)
    return await _shard_totals(conn, batch_id, shard, round_)


async def _shard_totals(conn: Conn, batch_id: str, shard: int, round_: int) -> ShardTotals:
    async with conn.transaction():
        await conn.execute("SET LOCAL enable_nestloop = off")
        row = await conn.fetchrow(
            """SELECT count(*) FILTER (WHERE x.outcome = 'succeeded') AS ok,
                      count(*) FILTER (WHERE x.outcome <> 'succeeded') AS bad,
                      COALESCE(sum(x.input_tokens), 0) AS input_tokens,
                      COALESCE(sum(x.output_tokens), 0) AS output_tokens,
                      COALESCE(sum(x.cached_tokens), 0) AS cached_tokens,
                      COALESCE(sum(x.cost_usd), 0) AS cost_usd,
                      count(*) FILTER (WHERE x.cost_usd IS NULL AND x.outcome = 'succeeded') AS cost_unknown
                 FROM results x JOIN requests r
                   ON r.batch_id = x.batch_id AND r.custom_id = x.custom_id AND r.round = x.round
                WHERE x.batch_id = $1 AND r.shard = $2 AND r.round = $3""",
            batch_id,
            shard,
            round_,
        )
    assert row is not None
    return ShardTotals(
        succeeded=int(row["ok"]),
        not_succeeded=int(row["bad"]),
        input_tokens=int(row["input_tokens"]),
        output_tokens=int(row["output_tokens"]),
        cached_tokens=int(row["cached_tokens"]),
        # a result whose price is unknown makes the sum unknown, never a silent undercount
        cost_usd=None if row["cost_unknown"] else float(row["cost_usd"]),
    )

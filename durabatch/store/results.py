"""Queries on `results`: idempotent bulk writes (COPY into a temp table, then upsert) and reads."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg

from durabatch.store.pool import Conn, Executor
from durabatch.store.tracing import query_span, traced

__all__ = ["RESULT_COLUMNS", "ShardTotals", "iter_results", "shard_totals", "write_results"]

RESULT_COLUMNS = (
    "batch_id",
    "custom_id",
    "round",
    "outcome",
    "status_code",
    "body",
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


@traced
async def write_results(
    conn: Conn, batch_id: str, shard: int, round_: int, records: Sequence[tuple[Any, ...]]
) -> int:
    """Write result rows (shaped as RESULT_COLUMNS; body and error as Python objects) for one shard and round.

    Rows for custom_ids that are not requests of this shard (a provider's stray or malformed line)
    are dropped, and a row already present is left alone, so replaying any part of a result file
    any number of times changes nothing. Returns the number of rows actually inserted.
    """
    async with conn.transaction():
        await conn.execute(
            """CREATE TEMP TABLE IF NOT EXISTS results_incoming
                   (LIKE results INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"""
        )
        await conn.copy_records_to_table("results_incoming", records=records, columns=list(RESULT_COLUMNS))
        # Without statistics the planner guesses one incoming row and joins each against every
        # request of the shard: quadratic, minutes for a 100k-line file.
        await conn.execute("ANALYZE results_incoming")
        status = await conn.execute(
            """INSERT INTO results (batch_id, custom_id, round, outcome, status_code, body, error,
                                    input_tokens, output_tokens, cached_tokens, cost_usd)
               SELECT DISTINCT ON (i.custom_id) i.batch_id, i.custom_id, i.round, i.outcome, i.status_code,
                      i.body, i.error, i.input_tokens, i.output_tokens, i.cached_tokens, i.cost_usd
                 FROM results_incoming i
                 JOIN requests r ON r.batch_id = i.batch_id AND r.custom_id = i.custom_id
                                AND r.shard = $2 AND r.round = $3
                WHERE i.batch_id = $1 AND i.round = $3
                ORDER BY i.custom_id
               ON CONFLICT (batch_id, custom_id, round) DO NOTHING""",
            batch_id,
            shard,
            round_,
        )
    return int(status.split()[-1])


async def iter_results(
    pool: asyncpg.Pool, batch_id: str, *, outcome: str | None = None, chunk: int = 2000
) -> AsyncIterator[asyncpg.Record]:
    """Each request's final-round result joined with its request, in line order, a chunk at a time."""
    last = -1
    while True:
        with query_span("results.iter_results", batch_id):
            rows = await pool.fetch(
                """SELECT r.line_no, r.custom_id, x.round, x.outcome, x.status_code, x.body, x.error,
                      x.input_tokens, x.output_tokens, x.cached_tokens, x.cost_usd
                 FROM requests r
                 JOIN results x ON x.batch_id = r.batch_id AND x.custom_id = r.custom_id AND x.round = r.round
                WHERE r.batch_id = $1 AND r.line_no > $2 AND ($3::text IS NULL OR x.outcome = $3)
                ORDER BY r.line_no LIMIT $4""",
                batch_id,
                last,
                outcome,
                chunk,
            )
        if not rows:
            return
        for row in rows:
            yield row
        last = rows[-1]["line_no"]


@traced
async def shard_totals(conn: Executor, batch_id: str, shard: int, round_: int) -> ShardTotals:
    """Outcomes, tokens and cost of one shard's results in one round."""
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

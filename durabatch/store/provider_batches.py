"""Queries on `provider_batches`: one row per provider submission of a shard in a round.

The row is written before the provider is called, so a retried submit knows an attempt happened
and when, and looks for the batch that attempt may have created instead of creating another.
"""

from __future__ import annotations

from datetime import datetime

import asyncpg

from durabatch.store.pool import Executor
from durabatch.store.tracing import traced

__all__ = ["get", "known_ids", "record_attempt", "record_status", "record_submitted"]


@traced
async def record_attempt(
    conn: Executor,
    *,
    batch_id: str,
    shard: int,
    round_: int,
    provider: str,
    tag: str,
    request_count: int,
) -> asyncpg.Record:
    """Insert the attempt row if it is new; return the row (existing or new)."""
    row = await conn.fetchrow(
        """INSERT INTO provider_batches (batch_id, shard, round, provider, tag, request_count)
           VALUES ($1, $2, $3, $4, $5, $6)
           ON CONFLICT (batch_id, shard, round) DO UPDATE SET updated_at = now()
           RETURNING *""",
        batch_id,
        shard,
        round_,
        provider,
        tag,
        request_count,
    )
    assert row is not None
    return row


@traced
async def record_submitted(
    conn: Executor,
    *,
    batch_id: str,
    shard: int,
    round_: int,
    provider_batch_id: str,
    input_file_id: str | None,
) -> None:
    await conn.execute(
        """UPDATE provider_batches SET provider_batch_id = $4, input_file_id = COALESCE($5, input_file_id),
                  submitted_at = COALESCE(submitted_at, now()), updated_at = now()
            WHERE batch_id = $1 AND shard = $2 AND round = $3""",
        batch_id,
        shard,
        round_,
        provider_batch_id,
        input_file_id,
    )


@traced
async def record_input_file(
    conn: Executor, *, batch_id: str, shard: int, round_: int, input_file_id: str
) -> None:
    """Keep the file an attempt uploaded, before it creates the batch: a retried create reuses it."""
    await conn.execute(
        """UPDATE provider_batches SET input_file_id = $4, updated_at = now()
            WHERE batch_id = $1 AND shard = $2 AND round = $3 AND provider_batch_id IS NULL""",
        batch_id,
        shard,
        round_,
        input_file_id,
    )


@traced
async def record_status(
    conn: Executor,
    *,
    batch_id: str,
    shard: int,
    round_: int,
    provider_status: str,
    terminal: bool,
    output_file_id: str | None = None,
    error_file_id: str | None = None,
    ingested: bool = False,
) -> None:
    await conn.execute(
        """UPDATE provider_batches SET provider_status = $4,
                  ended_at = CASE WHEN $5 THEN COALESCE(ended_at, now()) ELSE ended_at END,
                  output_file_id = COALESCE($6, output_file_id),
                  error_file_id = COALESCE($7, error_file_id),
                  ingested_at = CASE WHEN $8 THEN COALESCE(ingested_at, now()) ELSE ingested_at END,
                  updated_at = now()
            WHERE batch_id = $1 AND shard = $2 AND round = $3""",
        batch_id,
        shard,
        round_,
        provider_status,
        terminal,
        output_file_id,
        error_file_id,
        ingested,
    )


@traced
async def get(conn: Executor, batch_id: str, shard: int, round_: int) -> asyncpg.Record | None:
    row: asyncpg.Record | None = await conn.fetchrow(
        "SELECT * FROM provider_batches WHERE batch_id = $1 AND shard = $2 AND round = $3",
        batch_id,
        shard,
        round_,
    )
    return row


@traced
async def known_ids(conn: Executor, provider: str, since: datetime) -> frozenset[str]:
    """Provider batch ids the store has recorded for attempts started after `since`."""
    rows = await conn.fetch(
        """SELECT provider_batch_id FROM provider_batches
            WHERE provider = $1 AND provider_batch_id IS NOT NULL AND attempt_started_at > $2""",
        provider,
        since,
    )
    return frozenset(r["provider_batch_id"] for r in rows)

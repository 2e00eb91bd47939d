"""Queries on `batches`: create, status changes, reconciliation and totals."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import asyncpg

from durabatch.store.pool import Conn, Executor
from durabatch.store.tracing import traced

__all__ = [
    "BatchRow",
    "as_float",
    "claim_batch",
    "create_batch",
    "finish",
    "get_batch",
    "mark_handlers_dispatched",
    "reconcile",
    "set_progress",
    "set_status",
    "totals",
]

BatchRow = asyncpg.Record


@traced
async def create_batch(
    conn: Executor,
    *,
    batch_id: str,
    workflow_id: str,
    provider: str,
    endpoint: str,
    model: str | None,
    metadata: dict[str, str],
) -> None:
    """Insert the batch row, or leave an existing one (a retried staging) as it is."""
    await conn.execute(
        """INSERT INTO batches (batch_id, workflow_id, provider, endpoint, model, metadata)
           VALUES ($1, $2, $3, $4, $5, $6)
           ON CONFLICT (batch_id) DO NOTHING""",
        batch_id,
        workflow_id,
        provider,
        endpoint,
        model,
        metadata,
    )


@traced
async def claim_batch(
    conn: Executor,
    *,
    batch_id: str,
    workflow_id: str,
    owner_run_id: str,
    provider: str,
    endpoint: str,
    model: str | None,
    metadata: dict[str, str],
) -> BatchRow:
    """Make `owner_run_id` the owner of `batch_id` and return the row; compare its `owner_run_id`.

    A new id is inserted with its owner. An existing row is taken over only when no run owns it
    yet and nothing of it was sent (a batch a client staged before starting its workflow); a row
    another run owns is returned untouched, and a retry by the owner finds itself the owner.
    """
    row: BatchRow | None = await conn.fetchrow(
        """INSERT INTO batches (batch_id, workflow_id, provider, endpoint, model, metadata, owner_run_id)
           VALUES ($1, $2, $3, $4, $5, $6, $7)
           ON CONFLICT (batch_id) DO UPDATE SET owner_run_id = EXCLUDED.owner_run_id
            WHERE batches.owner_run_id IS NULL AND batches.workflow_id = EXCLUDED.workflow_id
              AND batches.status = 'pending'
              AND NOT EXISTS (SELECT 1 FROM provider_batches p WHERE p.batch_id = batches.batch_id)
           RETURNING *""",
        batch_id,
        workflow_id,
        provider,
        endpoint,
        model,
        metadata,
        owner_run_id,
    )
    if row is None:
        row = await conn.fetchrow("SELECT * FROM batches WHERE batch_id = $1", batch_id)
    assert row is not None
    return row


@traced
async def get_batch(conn: Executor, batch_id: str) -> BatchRow | None:
    row: BatchRow | None = await conn.fetchrow("SELECT * FROM batches WHERE batch_id = $1", batch_id)
    return row


@traced
async def set_status(
    conn: Executor,
    batch_id: str,
    status: str,
    *,
    failure_reason: str | None = None,
    model: str | None = None,
    request_count: int | None = None,
) -> None:
    await conn.execute(
        """UPDATE batches SET
               status = $2,
               failure_reason = COALESCE($3, failure_reason),
               model = COALESCE($4, model),
               request_count = COALESCE($5, request_count),
               submitted_at = CASE WHEN $2 IN ('submitted', 'in_progress') AND submitted_at IS NULL
                                   THEN now() ELSE submitted_at END
           WHERE batch_id = $1""",
        batch_id,
        status,
        failure_reason,
        model,
        request_count,
    )


@traced
async def reconcile(
    conn: Conn,
    batch_id: str,
    *,
    outcome: str,
    code: str,
    reason: str,
    shard: int | None = None,
    custom_ids: Sequence[str] | None = None,
) -> int:
    """Give every request (of `shard`, or all; of `custom_ids` only, when given) that has no result
    for its final round one, with `outcome` and the reason.

    Returns how many requests were resolved this way. Safe to repeat: a second call finds none.
    `custom_ids` is for a caller that knows which requests still lack a result (ingest, after its
    stream): the insert then touches those rows only instead of anti-joining the whole shard; an
    empty list writes nothing.

    A request's outcome is its `results` row only: `requests.status` tells where its submission
    stands (`pending`, `submitted`) and is not rewritten here. Writing the outcome into it too was
    a second write of every request row, with both its indexes (a third of ingest's time at
    50,000 results), for a column no reader uses once the result exists.
    """
    if custom_ids is not None and not custom_ids:
        return 0
    error = {"code": code, "message": reason}
    status = await conn.execute(
        """INSERT INTO results (batch_id, custom_id, round, outcome, error)
           SELECT r.batch_id, r.custom_id, r.round, $2, $3
             FROM requests r
            WHERE r.batch_id = $1 AND ($4::int IS NULL OR r.shard = $4)
              AND ($5::text[] IS NULL OR r.custom_id = ANY($5::text[]))
              AND NOT EXISTS (SELECT 1 FROM results x
                               WHERE x.batch_id = r.batch_id AND x.custom_id = r.custom_id
                                 AND x.round = r.round)
           ON CONFLICT (batch_id, custom_id, round) DO NOTHING""",
        batch_id,
        outcome,
        error,
        shard,
        None if custom_ids is None else list(custom_ids),
    )
    return int(status.split()[-1])


@traced
async def totals(conn: Conn, batch_id: str) -> dict[str, Any]:
    """Counts by outcome over each request's final-round result; tokens and cost over every
    attempt's result (a retried request was billed for each round that ran it); stores them on
    the batch. `retried` counts requests that needed more than one round."""
    row = await conn.fetchrow(
        """WITH final AS (
               SELECT x.* FROM results x JOIN requests r
                 ON r.batch_id = x.batch_id AND r.custom_id = x.custom_id AND r.round = x.round
                WHERE x.batch_id = $1),
           billed AS (
               SELECT COALESCE(sum(input_tokens), 0) AS input_tokens,
                      COALESCE(sum(output_tokens), 0) AS output_tokens,
                      COALESCE(sum(cached_tokens), 0) AS cached_tokens,
                      sum(cost_usd) AS cost_usd
                 FROM results WHERE batch_id = $1)
           SELECT (SELECT count(*) FROM requests WHERE batch_id = $1) AS total,
                  (SELECT count(*) FROM requests WHERE batch_id = $1 AND round > 0) AS retried,
                  count(*) FILTER (WHERE outcome = 'succeeded') AS succeeded,
                  count(*) FILTER (WHERE outcome = 'failed') AS failed,
                  count(*) FILTER (WHERE outcome = 'expired') AS expired,
                  count(*) FILTER (WHERE outcome = 'cancelled') AS cancelled,
                  (SELECT input_tokens FROM billed) AS input_tokens,
                  (SELECT output_tokens FROM billed) AS output_tokens,
                  (SELECT cached_tokens FROM billed) AS cached_tokens,
                  (SELECT cost_usd FROM billed) AS cost_usd,
                  count(*) FILTER (WHERE cost_usd IS NULL AND outcome = 'succeeded') AS cost_unknown
             FROM final""",
        batch_id,
    )
    assert row is not None
    result = dict(row)
    await conn.execute(
        """UPDATE batches SET succeeded_count = $2, failed_count = $3, expired_count = $4,
                  cancelled_count = $5, input_tokens = $6, output_tokens = $7, cached_tokens = $8,
                  cost_usd = $9, cost_unknown_count = $10, request_count = $11
            WHERE batch_id = $1""",
        batch_id,
        result["succeeded"],
        result["failed"],
        result["expired"],
        result["cancelled"],
        result["input_tokens"],
        result["output_tokens"],
        result["cached_tokens"],
        result["cost_usd"],
        result["cost_unknown"],
        result["total"],
    )
    return result


@traced
async def finish(
    conn: Conn, batch_id: str, status: str, failure_reason: str | None, cancel_reason: str | None = None
) -> asyncpg.Record | None:
    """Set the terminal status once (ended_at keeps the first end) and return the row (None when
    the store has no such batch)."""
    row = await conn.fetchrow(
        """UPDATE batches SET status = $2,
                  failure_reason = COALESCE($3, failure_reason),
                  cancel_reason = COALESCE($4, cancel_reason),
                  ended_at = COALESCE(ended_at, now()),
                  results_fetched_at = COALESCE(results_fetched_at, now())
            WHERE batch_id = $1 RETURNING *""",
        batch_id,
        status,
        failure_reason,
        cancel_reason,
    )
    result: asyncpg.Record | None = row
    return result


@traced
async def mark_handlers_dispatched(conn: Executor, batch_id: str) -> None:
    await conn.execute(
        "UPDATE batches SET handler_dispatched_at = COALESCE(handler_dispatched_at, now()) WHERE batch_id = $1",
        batch_id,
    )


def as_float(value: Decimal | None) -> float | None:
    return None if value is None else float(value)


@traced
async def set_progress(conn: Executor, batch_id: str, status: str) -> None:
    """Move a running batch to `in_progress` or `finalizing`; never touches an ended one."""
    await conn.execute(
        """UPDATE batches SET status = $2
            WHERE batch_id = $1 AND status IN ('pending', 'submitted', 'in_progress')""",
        batch_id,
        status,
    )

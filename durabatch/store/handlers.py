"""Queries on `handler_deliveries`: the durable record that makes a handler run at most once after success.

The record outlives workflow history: a workflow reset to an earlier point, or a worker that died
just after a handler succeeded, finds `succeeded` here and skips the handler.
"""

from __future__ import annotations

from durabatch.store.pool import Conn, Executor
from durabatch.store.tracing import traced

__all__ = ["begin_attempt", "delivery_status", "record_failure", "record_success"]


@traced
async def delivery_status(conn: Executor, batch_id: str, index: int) -> str | None:
    status: str | None = await conn.fetchval(
        "SELECT status FROM handler_deliveries WHERE batch_id = $1 AND handler_index = $2", batch_id, index
    )
    return status


@traced
async def begin_attempt(conn: Conn, batch_id: str, index: int, handler_type: str) -> str:
    """Count an attempt; returns the status before it ('succeeded' means: do not run again)."""
    async with conn.transaction():
        previous: str | None = await conn.fetchval(
            """SELECT status FROM handler_deliveries
                WHERE batch_id = $1 AND handler_index = $2 FOR UPDATE""",
            batch_id,
            index,
        )
        if previous == "succeeded":
            return previous
        await conn.execute(
            """INSERT INTO handler_deliveries (batch_id, handler_index, handler_type, status, attempts)
               VALUES ($1, $2, $3, 'running', 1)
               ON CONFLICT (batch_id, handler_index) DO UPDATE
                  SET attempts = handler_deliveries.attempts + 1, status = 'running', updated_at = now()""",
            batch_id,
            index,
            handler_type,
        )
    return previous or "new"


@traced
async def record_success(conn: Executor, batch_id: str, index: int) -> None:
    await conn.execute(
        """UPDATE handler_deliveries SET status = 'succeeded', succeeded_at = now(), last_error = NULL,
                  updated_at = now()
            WHERE batch_id = $1 AND handler_index = $2""",
        batch_id,
        index,
    )


@traced
async def record_failure(conn: Executor, batch_id: str, index: int, error: str) -> None:
    await conn.execute(
        """UPDATE handler_deliveries SET status = 'failed', last_error = $3, updated_at = now()
            WHERE batch_id = $1 AND handler_index = $2 AND status <> 'succeeded'""",
        batch_id,
        index,
        error[:2000],
    )

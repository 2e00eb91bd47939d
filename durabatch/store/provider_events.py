"""Queries for provider webhooks: which batch a provider batch id belongs to, and which deliveries
were already handled (deliveries come at least once; the event id dedupes them)."""

from __future__ import annotations

from dataclasses import dataclass

from durabatch.store.pool import Executor
from durabatch.store.tracing import traced

__all__ = ["BatchOfProviderBatch", "already_handled", "find_batch", "record_handled"]


@dataclass(frozen=True)
class BatchOfProviderBatch:
    batch_id: str
    workflow_id: str


@traced
async def find_batch(conn: Executor, provider: str, provider_batch_id: str) -> BatchOfProviderBatch | None:
    """The batch that submitted this provider batch, or None when it is not one of ours (another
    application on the same account, or a batch this store never recorded)."""
    row = await conn.fetchrow(
        """SELECT b.batch_id, b.workflow_id
             FROM provider_batches p JOIN batches b USING (batch_id)
            WHERE p.provider = $1 AND p.provider_batch_id = $2
            LIMIT 1""",
        provider,
        provider_batch_id,
    )
    return None if row is None else BatchOfProviderBatch(row["batch_id"], row["workflow_id"])


@traced
async def already_handled(conn: Executor, provider: str, event_id: str) -> bool:
    return bool(
        await conn.fetchval(
            "SELECT EXISTS (SELECT 1 FROM provider_events WHERE provider = $1 AND event_id = $2)",
            provider,
            event_id,
        )
    )


@traced
async def record_handled(
    conn: Executor,
    *,
    provider: str,
    event_id: str,
    event_type: str,
    provider_batch_id: str,
    batch_id: str | None,
) -> None:
    """Recorded only after the event's signal was accepted: a failed signal leaves the event
    unrecorded, so the provider's redelivery tries again."""
    await conn.execute(
        """INSERT INTO provider_events (provider, event_id, event_type, provider_batch_id, batch_id)
           VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING""",
        provider,
        event_id,
        event_type,
        provider_batch_id,
        batch_id,
    )

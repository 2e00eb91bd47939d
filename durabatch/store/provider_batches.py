"""Queries on `provider_batches`: one row per provider submission of a shard in a round.

The row is written before the provider is called, so a retried submit knows an attempt happened
and when, and looks for the batch that attempt may have created instead of creating another.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from durabatch.contract import TERMINAL_BATCH_STATUSES
from durabatch.store.pool import Executor
from durabatch.store.tracing import traced

__all__ = [
    "SweptChange",
    "get",
    "known_ids",
    "record_attempt",
    "record_status",
    "record_submitted",
    "record_swept",
    "sweep_window",
]

#: a batch in one of these has stopped watching its provider batches: the sweep leaves them alone
_ENDED = sorted(TERMINAL_BATCH_STATUSES)


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
    provider_status: str | None = None,
) -> None:
    """The provider batch an attempt created (or found), with the status its create answered, so
    that the account sweep takes a batch that has not moved since for unchanged."""
    await conn.execute(
        """UPDATE provider_batches SET provider_batch_id = $4, input_file_id = COALESCE($5, input_file_id),
                  provider_status = COALESCE(provider_status, $6),
                  submitted_at = COALESCE(submitted_at, now()), updated_at = now()
            WHERE batch_id = $1 AND shard = $2 AND round = $3""",
        batch_id,
        shard,
        round_,
        provider_batch_id,
        input_file_id,
        provider_status,
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


@dataclass(frozen=True)
class SweptChange:
    """A provider batch of ours whose status the account sweep saw change."""

    batch_id: str
    workflow_id: str
    provider_batch_id: str
    provider_status: str


@traced
async def sweep_window(conn: Executor, provider: str) -> datetime | None:
    """When the oldest provider batch still being watched was first attempted (a submitted
    provider batch, not yet seen ended, of a batch that has not ended); None when there is none,
    and the sweep has nothing to look at."""
    value: datetime | None = await conn.fetchval(
        """SELECT min(p.attempt_started_at)
             FROM provider_batches p JOIN batches b USING (batch_id)
            WHERE p.provider = $1 AND p.provider_batch_id IS NOT NULL AND p.ended_at IS NULL
              AND b.status <> ALL($2::text[])""",
        provider,
        _ENDED,
    )
    return value


@traced
async def record_swept(conn: Executor, provider: str, statuses: Mapping[str, str]) -> list[SweptChange]:
    """Record the provider statuses the sweep listed (provider batch id -> status) on the watched
    rows they differ from, and return those rows: the changed provider batches of ours. Ids that
    are not in the store (another application's batches on the account) match nothing.

    Only `provider_status` changes: `ended_at` stays the batch's own poll's to set, so a batch the
    sweep saw end stays watched until the batch itself has polled."""
    ids = list(statuses)
    rows = await conn.fetch(
        """UPDATE provider_batches p SET provider_status = v.status, updated_at = now()
             FROM unnest($2::text[], $3::text[]) AS v(id, status), batches b
            WHERE p.provider = $1 AND p.provider_batch_id = v.id AND b.batch_id = p.batch_id
              AND p.ended_at IS NULL AND b.status <> ALL($4::text[])
              AND p.provider_status IS DISTINCT FROM v.status
        RETURNING p.batch_id, b.workflow_id, p.provider_batch_id, v.status""",
        provider,
        ids,
        [statuses[i] for i in ids],
        _ENDED,
    )
    return [SweptChange(r["batch_id"], r["workflow_id"], r["provider_batch_id"], r["status"]) for r in rows]

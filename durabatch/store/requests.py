"""Queries on `requests`: bulk staging with COPY and streaming a shard back out."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any

import asyncpg

from durabatch.store.pool import Conn, Executor
from durabatch.store.tracing import query_span, traced

__all__ = [
    "STAGE_COLUMNS",
    "analyze",
    "copy_requests",
    "delete_requests",
    "iter_shard",
    "mark_submitted",
    "move_to_round",
    "shard_size",
]

STAGE_COLUMNS = ("batch_id", "custom_id", "line_no", "shard", "round", "body", "byte_size")


@traced
async def delete_requests(conn: Conn, batch_id: str) -> None:
    """Staging is redone whole on retry: clear what a crashed attempt may have left."""
    await conn.execute("DELETE FROM requests WHERE batch_id = $1", batch_id)


@traced
async def copy_requests(conn: Conn, records: Sequence[tuple[Any, ...]]) -> None:
    """COPY rows shaped as STAGE_COLUMNS; `body` is a Python object (jsonb codec)."""
    await conn.copy_records_to_table("requests", records=records, columns=list(STAGE_COLUMNS))


async def iter_shard(
    pool: asyncpg.Pool, batch_id: str, shard: int, round_: int, *, chunk: int = 2000
) -> AsyncIterator[tuple[str, dict[str, Any]]]:
    """Yield (custom_id, body) of one shard in line order, a chunk at a time (keyset pagination,
    so memory stays flat and no transaction is held open between chunks)."""
    last = -1
    while True:
        with query_span("requests.iter_shard", batch_id):
            rows = await _fetch_shard_chunk(pool, batch_id, shard, round_, last, chunk)
        if not rows:
            return
        for row in rows:
            yield row["custom_id"], row["body"]
        last = rows[-1]["line_no"]


async def _fetch_shard_chunk(
    pool: asyncpg.Pool, batch_id: str, shard: int, round_: int, last: int, chunk: int
) -> list[asyncpg.Record]:
    return await pool.fetch(
        """SELECT line_no, custom_id, body FROM requests
                WHERE batch_id = $1 AND shard = $2 AND round = $3 AND line_no > $4
                ORDER BY line_no LIMIT $5""",
        batch_id,
        shard,
        round_,
        last,
        chunk,
    )


@traced
async def shard_size(conn: Executor, batch_id: str, shard: int, round_: int) -> tuple[int, int]:
    """(request count, bytes) of one shard in one round."""
    row = await conn.fetchrow(
        """SELECT count(*) AS n, COALESCE(sum(byte_size), 0) AS bytes FROM requests
            WHERE batch_id = $1 AND shard = $2 AND round = $3""",
        batch_id,
        shard,
        round_,
    )
    assert row is not None
    return int(row["n"]), int(row["bytes"])


@traced
async def move_to_round(conn: Executor, batch_id: str, shard: int, from_round: int, to_round: int) -> int:
    """Move a shard's requests to a new round (to submit them again); returns how many moved."""
    status: str = await conn.execute(
        """UPDATE requests SET round = $4, status = 'pending'
            WHERE batch_id = $1 AND shard = $2 AND round = $3""",
        batch_id,
        shard,
        from_round,
        to_round,
    )
    return int(status.split()[-1])


@traced
async def mark_submitted(conn: Executor, batch_id: str, shard: int, round_: int) -> None:
    await conn.execute(
        """UPDATE requests SET status = 'submitted', attempts = attempts + 1
            WHERE batch_id = $1 AND shard = $2 AND round = $3 AND status = 'pending'""",
        batch_id,
        shard,
        round_,
    )


@traced
async def analyze(conn: Executor) -> None:
    """Refresh the planner's statistics after a bulk load: freshly staged rows are invisible to
    it until autovacuum comes by, and it then picks nested loops over the whole batch."""
    await conn.execute("ANALYZE requests")

"""Queries on `requests`: bulk staging with COPY and streaming a shard back out."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from typing import Any

import asyncpg

from durabatch.store.pool import Conn, Executor
from durabatch.store.tracing import query_span, traced

__all__ = [
    "STAGE_COLUMNS",
    "clear_unstarted",
    "copy_requests",
    "delete_requests",
    "iter_range",
    "iter_shard",
    "iter_sized_bodies",
    "line_sizes",
    "mark_submitted",
    "move_to_round",
    "set_shards",
    "shard_size",
    "shard_sizes",
]

STAGE_COLUMNS = ("batch_id", "custom_id", "line_no", "shard", "round", "body", "byte_size")


@traced
async def delete_requests(conn: Conn, batch_id: str) -> None:
    """Staging is redone whole on retry: clear what a crashed attempt may have left."""
    await conn.execute("DELETE FROM requests WHERE batch_id = $1", batch_id)


@traced
async def copy_requests(conn: Conn, records: Sequence[tuple[Any, ...]]) -> None:
    """COPY rows shaped as STAGE_COLUMNS; `body` is a Python object or a `RawJSON` text (jsonb codec).

    No ANALYZE afterwards: a table-wide ANALYZE after every start made concurrent starts queue on
    its lock; the per-batch queries use `(batch_id, ...)` index prefixes whatever the statistics,
    and autovacuum keeps them fresh."""
    await conn.copy_records_to_table("requests", records=records, columns=list(STAGE_COLUMNS))


async def iter_shard(
    pool: asyncpg.Pool, batch_id: str, shard: int, round_: int, *, chunk: int = 2000
) -> AsyncGenerator[tuple[str, dict[str, Any]], None]:
    """Yield (custom_id, body) of one shard in line order, a chunk at a time (keyset pagination,
    so memory stays flat and no transaction is held open between chunks).

    The next chunk is fetched while the consumer works through this one (a submit encodes and
    uploads it): fetched one after the other, the store's round trips and the upload took turns,
    and a shard was uploaded at a fraction of the network's pace. Two chunks are held at most."""

    async def fetch(after: int) -> list[asyncpg.Record]:
        # the span lives in the task, so its context never leaks into the consumer between rows
        with query_span("requests.iter_shard", batch_id):
            return await _fetch_shard_chunk(pool, batch_id, shard, round_, after, chunk)

    fetching: asyncio.Task[list[asyncpg.Record]] | None = asyncio.create_task(fetch(-1))
    try:
        while fetching is not None:
            rows = await fetching
            # a short chunk is the last one: no query for the empty page after it
            fetching = asyncio.create_task(fetch(rows[-1]["line_no"])) if len(rows) == chunk else None
            for row in rows:
                yield row["custom_id"], row["body"]
    finally:
        if fetching is not None and not fetching.done():
            # the consumer stopped early (a failed upload): the prefetch is not needed
            fetching.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await fetching


async def iter_range(
    pool: asyncpg.Pool,
    batch_id: str,
    shard: int,
    round_: int,
    line_from: int,
    line_to: int,
    *,
    chunk: int = 500,
) -> AsyncIterator[tuple[int, str, dict[str, Any] | None]]:
    """Yield (line_no, custom_id, body) of the shard's requests with `line_from <= line_no <
    line_to`, in line order; `body` is None for a request that already has a result for the round
    (so a resumed real-time run skips it without reading its body). Keyset-paginated like
    `iter_shard`: memory stays flat and no transaction is held between chunks."""
    last = line_from - 1
    while True:
        with query_span("requests.iter_range", batch_id):
            rows = await pool.fetch(
                """SELECT r.line_no, r.custom_id,
                          CASE WHEN x.custom_id IS NULL THEN r.body END AS body
                     FROM requests r
                     LEFT JOIN results x ON x.batch_id = r.batch_id AND x.custom_id = r.custom_id
                                        AND x.round = r.round
                    WHERE r.batch_id = $1 AND r.shard = $2 AND r.round = $3
                      AND r.line_no > $4 AND r.line_no < $5
                    ORDER BY r.line_no LIMIT $6""",
                batch_id,
                shard,
                round_,
                last,
                line_to,
                chunk,
            )
        if not rows:
            return
        for row in rows:
            yield row["line_no"], row["custom_id"], row["body"]
        last = rows[-1]["line_no"]


async def iter_sized_bodies(
    pool: asyncpg.Pool, batch_id: str, shard: int, round_: int, *, chunk: int = 2000
) -> AsyncIterator[tuple[dict[str, Any], int]]:
    """Yield (body, byte_size) of one shard in line order, as `iter_shard` pages through it."""
    last = -1
    while True:
        with query_span("requests.iter_sized_bodies", batch_id):
            rows = await _fetch_shard_chunk(pool, batch_id, shard, round_, last, chunk)
        if not rows:
            return
        for row in rows:
            yield row["body"], row["byte_size"]
        last = rows[-1]["line_no"]


async def _fetch_shard_chunk(
    pool: asyncpg.Pool, batch_id: str, shard: int, round_: int, last: int, chunk: int
) -> list[asyncpg.Record]:
    return await pool.fetch(
        """SELECT line_no, custom_id, body, byte_size FROM requests
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
async def clear_unstarted(conn: Conn, batch_id: str) -> bool:
    """Before a client stages a batch: False if `batch_id` belongs to a batch that started (a run
    owns it, it left `pending`, or something was sent); else remove any row an earlier staging
    left (a client that staged, then never started the workflow) and return True. Locks the row
    for the caller's transaction, so two clients staging one id take turns."""
    row = await conn.fetchrow(
        """SELECT owner_run_id IS NULL AND status = 'pending'
                  AND NOT EXISTS (SELECT 1 FROM provider_batches p WHERE p.batch_id = b.batch_id) AS free
             FROM batches b WHERE batch_id = $1 FOR UPDATE""",
        batch_id,
    )
    if row is None:
        return True
    if not row["free"]:
        return False
    await conn.execute("DELETE FROM batches WHERE batch_id = $1", batch_id)
    return True


@traced
async def shard_sizes(conn: Executor, batch_id: str) -> list[tuple[int, int, int]]:
    """(shard, request count, bytes) of a batch's first round, by shard (served by requests_shard_idx)."""
    rows = await conn.fetch(
        """SELECT shard, count(*) AS n, COALESCE(sum(byte_size), 0) AS bytes FROM requests
            WHERE batch_id = $1 AND round = 0 GROUP BY shard ORDER BY shard""",
        batch_id,
    )
    return [(int(r["shard"]), int(r["n"]), int(r["bytes"])) for r in rows]


@traced
async def line_sizes(conn: Executor, batch_id: str) -> list[tuple[int, int]]:
    """(line_no, byte_size) of a batch's first round in line order: enough to plan shards again."""
    rows = await conn.fetch(
        "SELECT line_no, byte_size FROM requests WHERE batch_id = $1 AND round = 0 ORDER BY line_no", batch_id
    )
    return [(int(r["line_no"]), int(r["byte_size"])) for r in rows]


@traced
async def set_shards(conn: Executor, batch_id: str, assignment: Sequence[tuple[int, int]]) -> None:
    """Move requests to new shards, given (line_no, shard) pairs."""
    await conn.execute(
        """UPDATE requests r SET shard = a.shard
             FROM unnest($2::integer[], $3::integer[]) AS a(line_no, shard)
            WHERE r.batch_id = $1 AND r.round = 0 AND r.line_no = a.line_no""",
        batch_id,
        [line_no for line_no, _ in assignment],
        [shard for _, shard in assignment],
    )

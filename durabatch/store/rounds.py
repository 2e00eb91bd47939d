"""Retry rounds in the store: which requests failed retryably, and moving them to a new round.

A request's rows in `results` are keyed by round; its current round is `requests.round`, so a
request moved to round N+1 keeps its earlier attempts' rows, and readers take the row of its
current round as its final result. The retry rule is durabatch.vocabulary's.
"""

from __future__ import annotations

from collections.abc import Sequence

from durabatch.store.pool import Executor
from durabatch.store.tracing import traced
from durabatch.vocabulary import MAX_AGE_CODE, RETRYABLE_ERROR_CODES, RETRYABLE_STATUS_CODES

__all__ = ["move_to_new_round", "retryable_requests", "round_shards", "shard_requests"]

#: a result row `x` whose outcome a retry may change
_RETRYABLE = """(
    (x.outcome = 'expired' AND COALESCE(x.error->>'code', '') <> $2)
    OR (x.outcome = 'failed' AND (
        x.status_code >= 500 OR x.status_code = ANY($3::int[])
        OR x.error->>'code' = ANY($4::text[]) OR x.error->>'type' = ANY($4::text[])
        OR x.error->>'status' = ANY($4::text[])))
)"""


@traced
async def retryable_requests(
    conn: Executor, batch_id: str, *, include_cancelled: bool = False
) -> list[tuple[int, int]]:
    """(line_no, byte_size), in line order, of the requests whose current round's result is a
    retryable failure (or, with `include_cancelled`, cancelled with their provider batch)."""
    rows = await conn.fetch(
        f"""SELECT r.line_no, r.byte_size
              FROM requests r
              JOIN results x ON x.batch_id = r.batch_id AND x.custom_id = r.custom_id AND x.round = r.round
             WHERE r.batch_id = $1
               AND ({_RETRYABLE} OR ($5 AND x.outcome = 'cancelled'))
             ORDER BY r.line_no""",
        batch_id,
        MAX_AGE_CODE,
        list(RETRYABLE_STATUS_CODES),
        list(RETRYABLE_ERROR_CODES),
        include_cancelled,
    )
    return [(int(r["line_no"]), int(r["byte_size"])) for r in rows]


@traced
async def shard_requests(conn: Executor, batch_id: str, shard: int, round_: int) -> list[tuple[int, int]]:
    """(line_no, byte_size), in line order, of every request of one shard of one round."""
    rows = await conn.fetch(
        """SELECT line_no, byte_size FROM requests
            WHERE batch_id = $1 AND shard = $2 AND round = $3 ORDER BY line_no""",
        batch_id,
        shard,
        round_,
    )
    return [(int(r["line_no"]), int(r["byte_size"])) for r in rows]


@traced
async def round_shards(conn: Executor, batch_id: str, round_: int) -> list[tuple[int, int, int]]:
    """(shard, request count, bytes) of one round, by shard; empty if the round has no requests."""
    rows = await conn.fetch(
        """SELECT shard, count(*) AS n, COALESCE(sum(byte_size), 0) AS bytes FROM requests
            WHERE batch_id = $1 AND round = $2 GROUP BY shard ORDER BY shard""",
        batch_id,
        round_,
    )
    return [(int(r["shard"]), int(r["n"]), int(r["bytes"])) for r in rows]


@traced
async def move_to_new_round(
    conn: Executor, batch_id: str, to_round: int, assignment: Sequence[tuple[int, int]]
) -> int:
    """Move requests, given as (line_no, shard) pairs, to `to_round` in those shards."""
    status: str = await conn.execute(
        """UPDATE requests r SET round = $2, shard = a.shard, status = 'pending'
             FROM unnest($3::integer[], $4::integer[]) AS a(line_no, shard)
            WHERE r.batch_id = $1 AND r.line_no = a.line_no AND r.round < $2""",
        batch_id,
        to_round,
        [line_no for line_no, _ in assignment],
        [shard for _, shard in assignment],
    )
    return int(status.split()[-1])

"""Splitting through the real worker, at the edges of a batch's own caps: k * cap requests are k
provider batches and one more is k + 1; lines that land exactly on `max_bytes_per_shard` fill a
shard; a request no shard can hold fails the batch before anything is sent; retry rounds keep the
caps. (The providers' own limits are proven on the planner: tests/test_shard_split.py.)"""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

from durabatch.models import BatchSummary
from tests.stack import Stack, assert_one_outcome_each, chat_requests

CAP = 3
K = 3
BYTE_CAP = 1024  # the smallest max_bytes_per_shard a batch may ask for


def sized_request(custom_id: str, size: int) -> dict[str, Any]:
    """A request whose body is exactly `size` bytes as staging counts it (compact JSON)."""
    body: dict[str, Any] = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": ""}]}
    pad = size - len(json.dumps(body, separators=(",", ":")))
    body["messages"][0]["content"] = "x" * pad
    return {"custom_id": custom_id, "method": "POST", "url": "/v1/chat/completions", "body": body}


async def run_batch(stack: Stack, **fields: Any) -> tuple[str, BatchSummary]:
    batch_id = uuid.uuid4().hex[:10]
    handle = await stack.start(
        batch_id=batch_id, provider="openai", endpoint="/v1/chat/completions", **fields
    )
    return batch_id, await asyncio.wait_for(handle.result(), 90)


async def shards_of(stack: Stack, batch_id: str, round_: int = 0) -> list[tuple[int, int]]:
    """(requests, body bytes) of each provider batch of a round, from what the worker sent."""
    rows = await stack.pool.fetch(
        """SELECT p.shard, p.request_count, sum(r.byte_size) AS bytes
             FROM provider_batches p JOIN requests r USING (batch_id, shard, round)
            WHERE p.batch_id = $1 AND p.round = $2 GROUP BY p.shard, p.request_count ORDER BY p.shard""",
        batch_id,
        round_,
    )
    return [(r["request_count"], r["bytes"]) for r in rows]


async def test_batches_at_and_one_past_the_caps(stack: Stack) -> None:
    half = BYTE_CAP // 2
    runs = await asyncio.gather(
        run_batch(stack, requests=chat_requests(K * CAP), max_requests_per_shard=CAP),
        run_batch(stack, requests=chat_requests(K * CAP + 1), max_requests_per_shard=CAP),
        # two lines fill a shard to the byte; the fifth line starts a third
        run_batch(
            stack,
            requests=[sized_request(f"b{i}", half) for i in range(4)] + [sized_request("b4", 300)],
            max_bytes_per_shard=BYTE_CAP,
        ),
        # one byte more and the second line no longer fits beside the first
        run_batch(
            stack,
            requests=[sized_request("c0", half), sized_request("c1", half + 1)],
            max_bytes_per_shard=BYTE_CAP,
        ),
    )
    (exact, exact_summary), (past, past_summary), (by_bytes, _), (over, _) = runs
    for batch_id, summary in runs:
        assert summary.status == "completed", summary.failure_reason
        await assert_one_outcome_each(stack, batch_id)
    assert len(exact_summary.provider_batch_ids) == K
    assert [n for n, _ in await shards_of(stack, exact)] == [CAP] * K
    assert len(past_summary.provider_batch_ids) == K + 1
    assert [n for n, _ in await shards_of(stack, past)] == [CAP] * K + [1]
    assert await shards_of(stack, by_bytes) == [(2, BYTE_CAP), (2, BYTE_CAP), (1, 300)]
    assert await shards_of(stack, over) == [(1, half), (1, half + 1)]


async def test_a_request_over_the_byte_cap_fails_the_batch_before_anything_is_sent(stack: Stack) -> None:
    batch_id, summary = await run_batch(
        stack,
        requests=[sized_request("fits", BYTE_CAP), sized_request("too-big", BYTE_CAP + 1)],
        max_bytes_per_shard=BYTE_CAP,
    )
    assert summary.status == "failed"
    reason = summary.failure_reason or ""
    assert "line 2" in reason and f"{BYTE_CAP + 1} bytes" in reason and "max_bytes_per_shard" in reason
    assert summary.provider_batch_ids == []
    sent = await stack.pool.fetchval("SELECT count(*) FROM provider_batches WHERE batch_id = $1", batch_id)
    assert sent == 0


async def test_a_retry_round_keeps_the_shard_cap(stack: Stack) -> None:
    requests = chat_requests(5)
    for request in requests[1:]:
        request["custom_id"] += "__fail_500"  # fails retryably in round 0 only
    batch_id, summary = await run_batch(stack, requests=requests, max_requests_per_shard=2, max_rounds=2)
    assert summary.status == "completed" and summary.counts.retried == 4
    sent = await stack.pool.fetch(
        "SELECT round, request_count FROM provider_batches WHERE batch_id = $1 ORDER BY round, shard",
        batch_id,
    )
    # the four retried requests: two provider batches of two, not one of four
    assert [(r["round"], r["request_count"]) for r in sent] == [(0, 2), (0, 2), (0, 1), (1, 2), (1, 2)]
    await assert_one_outcome_each(stack, batch_id)

"""Real-time mode runs a batch through the synchronous API; a deadline makes a batch hand what the
batch API has not finished to real time, keeping what it did finish and running nothing twice."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
from temporalio.client import Client

from durabatch.models import StatusQuery
from durabatch.store.pool import Pool
from tests.stack import Stack, assert_one_outcome_each, chat_requests, emulator_config, worker_stack


def new_id() -> str:
    return uuid.uuid4().hex[:10]


async def realtime_calls(stack: Stack) -> int:
    stats = await stack.admin("GET", "/stats")
    return sum(n for k, n in stats.get("realtime", {}).items() if k.startswith("openai:ok"))


async def test_realtime_mode_sends_nothing_to_the_batch_api(stack: Stack) -> None:
    created = (await stack.admin("GET", "/stats"))["batches_created"].get("openai", 0)
    calls = await realtime_calls(stack)
    batch_id = new_id()
    handle = await stack.start(
        batch_id=batch_id,
        provider="openai",
        endpoint="/v1/chat/completions",
        requests=chat_requests(20),
        mode="realtime",
        realtime={"concurrency": 4, "rpm": 6000},
    )
    summary = await asyncio.wait_for(handle.result(), 60)
    assert summary.status == "completed" and summary.counts.succeeded == 20
    assert summary.counts.realtime == 20 and summary.provider_batch_ids == []
    assert (await stack.admin("GET", "/stats"))["batches_created"].get("openai", 0) == created
    assert await realtime_calls(stack) == calls + 20
    await assert_one_outcome_each(stack, batch_id)
    assert summary.cost_usd is not None and summary.cost_usd > 0
    status = await handle.query("status", result_type=StatusQuery)
    assert status.realtime_requests == 20 and (status.realtime_rpm or 0) > 0


async def test_a_cancel_stops_a_realtime_batch(stack: Stack) -> None:
    handle = await stack.start(
        batch_id=new_id(),
        provider="openai",
        endpoint="/v1/chat/completions",
        requests=chat_requests(200),
        mode="realtime",
        realtime={"concurrency": 1, "rpm": 60},  # one a second: far from done when cancelled
    )
    await asyncio.sleep(3)
    await handle.signal("cancel", {"reason": "enough"})
    summary = await asyncio.wait_for(handle.result(), 60)
    assert summary.status == "cancelled"
    assert summary.counts.cancelled > 150 and summary.counts.succeeded + summary.counts.cancelled == 200


@pytest.fixture(scope="module")
async def slow_stack(
    temporal_client: Client, pool: Pool, database_url: str, api_keys: None
) -> AsyncIterator[Stack]:
    # 20 requests at 1 s each: about half done by a deadline of 12 s
    config = emulator_config(ms_per_request=1000.0)
    async with worker_stack(temporal_client, pool, database_url, config, queue_prefix="rt") as stack:
        yield stack


async def test_a_near_deadline_moves_the_unfinished_requests_to_real_time(slow_stack: Stack) -> None:
    stack = slow_stack
    calls = await realtime_calls(stack)
    batch_id = new_id()
    handle = await stack.start(
        batch_id=batch_id,
        provider="openai",
        endpoint="/v1/chat/completions",
        requests=chat_requests(20),
        deadline_seconds=12.0,
        realtime={"rpm": 6000, "concurrency": 4},
    )
    summary = await asyncio.wait_for(handle.result(), 60)
    assert summary.status == "completed" and summary.counts.succeeded == 20
    by_batch = await stack.pool.fetchval(
        "SELECT count(*) FROM results WHERE batch_id = $1 AND round = 0 AND outcome = 'succeeded'", batch_id
    )
    assert 0 < by_batch < 20, by_batch  # the batch API finished some, real time the rest
    assert summary.counts.realtime == 20 - by_batch
    assert await realtime_calls(stack) == calls + 20 - by_batch  # nothing ran twice
    twice = await stack.pool.fetchval(
        """SELECT count(*) FROM (SELECT custom_id FROM results WHERE batch_id = $1 AND outcome = 'succeeded'
                                  GROUP BY custom_id HAVING count(*) > 1) s""",
        batch_id,
    )
    assert twice == 0
    await assert_one_outcome_each(stack, batch_id)

"""A round's shards are submitted concurrently (up to SUBMIT_CONCURRENCY at once) and polled by one
activity; a shard whose submit fails for good while others are still being sent fails the batch,
and every shard that was sent is cancelled at the provider."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowFailureError, WorkflowHandle
from temporalio.exceptions import CancelledError

from durabatch.models import BatchSummary, StatusQuery
from durabatch.store.pool import Pool
from tests.helpers import eventually
from tests.stack import Stack, assert_one_outcome_each, chat_requests, replay_and_record, worker_stack
from workflows.base import SUBMIT_CONCURRENCY

#: more shards than are submitted at once
SHARDS = SUBMIT_CONCURRENCY + 2
PER_SHARD = 2
#: each create waits this long at the emulator: sequential creates would never overlap
CREATE_DELAY = 1.5


@pytest.fixture
async def slow_stack(stack: Stack) -> AsyncIterator[Stack]:
    """The module's stack with fresh emulator counters, and creates that take CREATE_DELAY."""
    await stack.admin("POST", "/reset")
    await stack.fault(fault="slow", provider="openai", operation="batches.create", delay_seconds=CREATE_DELAY)
    try:
        yield stack
    finally:
        await stack.admin("DELETE", "/faults")
        await stack.admin("PATCH", "/config", json={"validating_seconds": 0.1})


def poll_inputs(events: list[Any]) -> list[dict[str, Any]]:
    """The decoded input of every `poll_shards` activity the batch scheduled."""
    found = []
    for e in events:
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            attrs = e.activity_task_scheduled_event_attributes
            if attrs.activity_type.name == "poll_shards":
                found.append(json.loads(attrs.input.payloads[0].data))
    return found


async def start_sharded(stack: Stack) -> tuple[str, WorkflowHandle[Any, BatchSummary]]:
    """A batch of SHARDS shards of PER_SHARD requests."""
    batch_id = uuid.uuid4().hex[:10]
    handle = await stack.start(
        batch_id=batch_id,
        provider="openai",
        endpoint="/v1/chat/completions",
        requests=chat_requests(SHARDS * PER_SHARD),
        max_requests_per_shard=PER_SHARD,
    )
    return batch_id, handle


async def start_while_creates_overlap(stack: Stack) -> tuple[str, WorkflowHandle[Any, BatchSummary]]:
    """A batch of SHARDS shards (slow to validate), returned once two creates are in flight."""
    await stack.admin("PATCH", "/config", json={"validating_seconds": 5.0})
    batch_id, handle = await start_sharded(stack)
    await eventually(
        lambda: stack.admin("GET", "/stats"),
        lambda stats: stats["peak_in_flight"].get("openai:batches.create", 0) >= 2,
        what="creates in flight",
    )
    return batch_id, handle


async def assert_cancelled_at_provider(stack: Stack, provider_batch_ids: list[str]) -> None:
    for provider_batch_id in provider_batch_ids:
        view = await stack.admin("GET", f"/batches/{provider_batch_id}")
        assert view["phase"] in ("cancelling", "cancelled"), view


async def test_shards_are_submitted_at_once_and_polled_together(slow_stack: Stack) -> None:
    batch_id, handle = await start_sharded(slow_stack)
    summary = await asyncio.wait_for(handle.result(), 60)
    assert summary.status == "completed" and summary.counts.succeeded == SHARDS * PER_SHARD
    assert len(summary.provider_batch_ids) == SHARDS
    stats = await slow_stack.admin("GET", "/stats")
    # creates were at the emulator together, never more than SUBMIT_CONCURRENCY (on an idle
    # machine all of them: 8); one after the other, one at a time
    assert 2 <= stats["peak_in_flight"]["openai:batches.create"] <= SUBMIT_CONCURRENCY
    assert stats["batches_created"]["openai"] == SHARDS
    polls = poll_inputs(list((await handle.fetch_history()).events))
    assert polls, "the batch never polled"
    # one poll activity asks about every shard still running
    assert len(polls[0]["shards"]) == SHARDS
    assert all(len(p["shards"]) <= SHARDS for p in polls)
    await assert_one_outcome_each(slow_stack, batch_id)
    await replay_and_record(handle, "concurrent_submit")


async def test_a_shard_failing_to_submit_cancels_the_others(slow_stack: Stack) -> None:
    # provider batches validate for a while, so the cancel finds them still running
    await slow_stack.admin("PATCH", "/config", json={"validating_seconds": 5.0})
    # the first create to arrive is refused for good at once, while the others wait out their delay
    await slow_stack.admin("DELETE", "/faults")
    await slow_stack.fault(
        fault="http_error", provider="openai", operation="batches.create", status=400, count=1
    )
    await slow_stack.fault(
        fault="slow", provider="openai", operation="batches.create", delay_seconds=CREATE_DELAY
    )
    batch_id, handle = await start_sharded(slow_stack)
    summary = await asyncio.wait_for(handle.result(), 60)
    assert summary.status == "failed"
    assert summary.failure_reason and "submitting shard" in summary.failure_reason
    assert "failed" in summary.failure_reason
    stats = await slow_stack.admin("GET", "/stats")
    sent = summary.provider_batch_ids
    # the shards already being submitted were sent (one after the other: none, the first create
    # being the refused one); none was started after the failure, so the last two never were
    assert 1 <= len(sent) <= SUBMIT_CONCURRENCY - 1
    assert stats["batches_created"]["openai"] == len(sent)
    await assert_cancelled_at_provider(slow_stack, sent)
    assert summary.counts.succeeded == 0
    assert summary.counts.failed + summary.counts.cancelled == SHARDS * PER_SHARD
    await assert_one_outcome_each(slow_stack, batch_id)
    await replay_and_record(handle, "concurrent_submit_one_fails")


async def test_a_cancel_while_shards_are_being_submitted(slow_stack: Stack) -> None:
    batch_id, handle = await start_while_creates_overlap(slow_stack)
    await handle.signal("cancel", {"reason": "changed my mind"})
    summary = await asyncio.wait_for(handle.result(), 60)
    assert summary.status == "cancelled" and summary.cancel_reason == "changed my mind"
    stats = await slow_stack.admin("GET", "/stats")
    # the creates in flight finished; no shard was started after the cancel
    assert 2 <= len(summary.provider_batch_ids) <= SUBMIT_CONCURRENCY
    assert stats["batches_created"]["openai"] == len(summary.provider_batch_ids)
    await assert_cancelled_at_provider(slow_stack, summary.provider_batch_ids)
    assert summary.counts.cancelled == SHARDS * PER_SHARD
    await assert_one_outcome_each(slow_stack, batch_id)


async def test_temporal_cancellation_while_shards_are_being_submitted(slow_stack: Stack) -> None:
    batch_id, handle = await start_while_creates_overlap(slow_stack)
    await handle.cancel()
    with pytest.raises(WorkflowFailureError) as failure:
        await asyncio.wait_for(handle.result(), 60)
    assert isinstance(failure.value.cause, CancelledError)
    final = await handle.query("status", result_type=StatusQuery)
    assert final.status == "cancelled" and final.cancel_reason == "cancelled through Temporal"
    assert final.counts.cancelled == SHARDS * PER_SHARD
    # the submits in flight finished before the batch ended (none was started after the
    # cancel), so every provider batch made is known to the store, and cancelled
    rows = await slow_stack.pool.fetch(
        "SELECT provider_batch_id FROM provider_batches WHERE batch_id = $1 AND provider_batch_id IS NOT NULL",
        batch_id,
    )
    stats = await slow_stack.admin("GET", "/stats")
    assert 2 <= len(rows) <= SUBMIT_CONCURRENCY
    assert stats["batches_created"]["openai"] == len(rows) == stats["requests"]["openai:batches.create"]
    await assert_cancelled_at_provider(slow_stack, [row["provider_batch_id"] for row in rows])
    await assert_one_outcome_each(slow_stack, batch_id)
    await replay_and_record(handle, "temporal_cancel_mid_submit")


@pytest.fixture(scope="module")
async def one_slot(
    temporal_client: Client, pool: Pool, database_url: str, api_keys: None
) -> AsyncIterator[Stack]:
    """An OpenAI account with room for one running provider batch at a time."""
    async with worker_stack(
        temporal_client, pool, database_url, queue_prefix="csub", openai_max_concurrent_batches=1
    ) as s:
        yield s


async def test_max_age_while_shards_wait_for_room(one_slot: Stack) -> None:
    # the first shard takes the account's only place and keeps it; the other two wait for room
    await one_slot.admin("PATCH", "/config", json={"validating_seconds": 30.0})
    try:
        batch_id = uuid.uuid4().hex[:10]
        handle = await one_slot.start(
            batch_id=batch_id,
            provider="openai",
            endpoint="/v1/chat/completions",
            requests=chat_requests(3),
            max_requests_per_shard=1,
            max_age_seconds=3,
        )
        summary = await asyncio.wait_for(handle.result(), 60)
    finally:
        await one_slot.admin("PATCH", "/config", json={"validating_seconds": 0.1})
    assert summary.status == "expired" and "waiting for room" in (summary.failure_reason or "")
    assert len(summary.provider_batch_ids) == 1
    await assert_cancelled_at_provider(one_slot, summary.provider_batch_ids)
    assert summary.counts.expired + summary.counts.cancelled == 3
    await assert_one_outcome_each(one_slot, batch_id)
    # every place was given back: the next batch is sent at once
    after = await one_slot.run(
        batch_id=uuid.uuid4().hex[:10],
        provider="openai",
        endpoint="/v1/chat/completions",
        requests=chat_requests(1),
    )
    assert after.status == "completed"

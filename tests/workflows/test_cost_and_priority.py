"""The cost limit refuses a batch before anything reaches the provider, whichever way it starts;
priority and tenant reach every task the batch schedules."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest
from temporalio.api.enums.v1 import EventType

from durabatch.client import BatchClient, CostLimitExceeded
from tests.stack import Stack, chat_requests, write_jsonl


def new_id() -> str:
    return uuid.uuid4().hex[:10]


async def test_a_batch_over_its_cost_limit_fails_before_anything_is_sent(stack: Stack) -> None:
    before = await stack.admin("GET", "/stats")
    handle = await stack.start(
        batch_id=new_id(),
        provider="openai",
        endpoint="/v1/chat/completions",
        requests=chat_requests(5),
        max_cost_usd=1e-7,
    )
    summary = await asyncio.wait_for(handle.result(), 60)
    assert summary.status == "failed"
    assert "max_cost_usd" in (summary.failure_reason or "") and "nothing was sent" in (
        summary.failure_reason or ""
    )
    assert summary.counts.failed == 5 and summary.provider_batch_ids == []
    after = await stack.admin("GET", "/stats")
    assert after["batches_created"] == before["batches_created"]


async def test_a_model_without_a_price_cannot_pass_a_cost_limit(stack: Stack) -> None:
    handle = await stack.start(
        batch_id=new_id(),
        provider="openai",
        endpoint="/v1/chat/completions",
        requests=chat_requests(2, model="no-such-model-priced"),
        max_cost_usd=1000.0,
    )
    summary = await asyncio.wait_for(handle.result(), 60)
    assert summary.status == "failed" and "no batch price is known" in (summary.failure_reason or "")


async def test_a_batch_within_its_limit_runs_and_carries_priority_and_tenant(stack: Stack) -> None:
    handle = await stack.start(
        batch_id=new_id(),
        provider="openai",
        endpoint="/v1/chat/completions",
        requests=chat_requests(3),
        max_cost_usd=5.0,
        priority=1,
        tenant="team-a",
    )
    summary = await asyncio.wait_for(handle.result(), 60)
    assert summary.status == "completed" and summary.counts.succeeded == 3
    history = await handle.fetch_history()
    scheduled = [
        e.activity_task_scheduled_event_attributes
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
    ]
    assert len(scheduled) >= 5  # claim, stage, submit, poll, ingest, finalize...
    assert {(a.priority.priority_key, a.priority.fairness_key) for a in scheduled} == {(1, "team-a")}


async def test_the_client_refuses_a_file_over_its_limit_and_stages_nothing(
    stack: Stack, tmp_path: Path
) -> None:
    batch_id = new_id()
    path = Path(write_jsonl(tmp_path / "reqs.jsonl", chat_requests(50)))
    client = BatchClient(stack.client, stack.settings, stack.settings.database_url)
    try:
        with pytest.raises(CostLimitExceeded, match="above max_cost_usd"):
            await client.start(
                batch_id=batch_id,
                provider="openai",
                endpoint="/v1/chat/completions",
                requests_path=path,
                max_cost_usd=1e-7,
            )
        assert await stack.pool.fetchval("SELECT count(*) FROM requests WHERE batch_id = $1", batch_id) == 0
        assert await stack.pool.fetchval("SELECT count(*) FROM batches WHERE batch_id = $1", batch_id) == 0
        # the same id is still free: within a sensible limit the file starts and completes
        handle = await client.start(
            batch_id=batch_id,
            provider="openai",
            endpoint="/v1/chat/completions",
            requests_path=path,
            max_cost_usd=10.0,
            poll_schedule_seconds=[1.0],
        )
        summary = await asyncio.wait_for(handle.wait(), 90)
        assert summary.status == "completed" and summary.counts.succeeded == 50
    finally:
        await client.close()

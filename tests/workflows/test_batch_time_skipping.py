"""Day-long schedules on the time-skipping server: a 25-hour poll schedule runs in seconds.

The emulator runs in real time, so its batches are parked in `validating` (a huge validating
time) and moved on through its admin API exactly when the test decides.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from temporalio.client import Client, WorkflowFailureError, WorkflowHandle
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from durabatch.contract import summary_from_failure
from durabatch.models import BatchInput, BatchSummary, StatusQuery, workflow_id_for
from durabatch.store.pool import Pool
from tests.stack import (
    Stack,
    chat_requests,
    emulator_config,
    poll_events,
    replay_and_record,
    worker_stack,
)

DAY = 24 * 3600


@pytest.fixture(scope="module")
async def ts_stack(
    time_skipping_env: WorkflowEnvironment, pool: Pool, database_url: str, api_keys: None
) -> AsyncIterator[Stack]:
    config = emulator_config(validating_seconds=10 * DAY)
    async with worker_stack(time_skipping_env.client, pool, database_url, config, queue_prefix="ts") as stack:
        yield stack


async def start(stack: Stack, **fields: Any) -> WorkflowHandle[Any, BatchSummary]:
    inp = BatchInput(provider="openai", endpoint="/v1/chat/completions", **fields)
    assert inp.batch_id
    return await stack.client.start_workflow(
        "BatchWorkflow",
        inp,
        id=workflow_id_for(inp.batch_id),
        task_queue=stack.settings.task_queue,
        result_type=BatchSummary,
        # Far beyond any max age here: without an execution timeout the test server's clock can
        # jump years ahead on a result() call (a known quirk of the Java test server), expiring a batch mid-test.
        execution_timeout=timedelta(days=60),
    )


async def runs_of(client: Client, workflow_id: str) -> list[int]:
    """History lengths of every run of a workflow, newest first (following continue-as-new back)."""
    lengths = []
    run_id: str | None = None
    while True:
        history = await client.get_workflow_handle(workflow_id, run_id=run_id).fetch_history()
        lengths.append(len(history.events))
        previous = history.events[0].workflow_execution_started_event_attributes.continued_execution_run_id
        if not previous:
            return lengths
        run_id = previous


async def elapsed_workflow_time(client: Client, workflow_id: str) -> timedelta:
    """Workflow time from the first run's start to the last run's close."""
    last = await client.get_workflow_handle(workflow_id).fetch_history()
    first = last
    while prev := first.events[0].workflow_execution_started_event_attributes.continued_execution_run_id:
        first = await client.get_workflow_handle(workflow_id, run_id=prev).fetch_history()
    return last.events[-1].event_time.ToDatetime() - first.events[0].event_time.ToDatetime()


async def test_batch_completes_after_a_day_of_polling(ts_stack: Stack) -> None:
    stack = ts_stack
    batch_id = uuid.uuid4().hex[:10]
    # default schedule; a 48 h max age leaves the test a wide margin to release the batch after a day
    handle = await start(stack, batch_id=batch_id, requests=chat_requests(20), max_age_seconds=48 * 3600)
    result = asyncio.ensure_future(handle.result())  # awaiting a result lets the server skip time
    try:
        while True:
            status = await handle.query("status", result_type=StatusQuery)
            # default schedule: 30 s, 1, 2, 5, 10 min, then every 15 min: ~96 polls a day
            if status.poll_count >= 100:
                break
            await asyncio.sleep(0.05)
        provider_batch_id = status.shards[0].provider_batch_id
        await stack.admin("POST", f"/batches/{provider_batch_id}/advance", json={"to": "completed"})
        summary = await asyncio.wait_for(result, timeout=120)
    finally:
        result.cancel()
    assert summary.status == "completed" and summary.counts.succeeded == 20
    assert await elapsed_workflow_time(stack.client, handle.id) > timedelta(hours=24)


async def test_max_age_expiry_after_25_hours(ts_stack: Stack) -> None:
    stack = ts_stack
    batch_id = uuid.uuid4().hex[:10]
    handle = await start(stack, batch_id=batch_id, requests=chat_requests(8))  # default max age: 25 h
    summary = await asyncio.wait_for(handle.result(), timeout=300)
    assert summary.status == "expired"
    assert summary.counts.expired + summary.counts.cancelled == 8
    elapsed = await elapsed_workflow_time(stack.client, handle.id)
    assert timedelta(hours=25) <= elapsed < timedelta(hours=26)
    rows = await stack.pool.fetchval("SELECT count(*) FROM results WHERE batch_id = $1", batch_id)
    assert rows == 8


async def test_polling_every_30s_for_25_hours_keeps_each_run_under_2000_events(ts_stack: Stack) -> None:
    stack = ts_stack
    batch_id = uuid.uuid4().hex[:10]
    handle = await start(
        stack,
        batch_id=batch_id,
        requests=chat_requests(4),
        poll_schedule_seconds=[30.0],
        max_age_seconds=25 * 3600,
    )
    latest = stack.client.get_workflow_handle(handle.id)  # follows continue-as-new
    result = asyncio.ensure_future(handle.result())
    try:
        # a cancel between runs is carried across continue-as-new
        while await _poll_count(latest) < 2000:
            assert not result.done(), f"the batch ended before 2,000 polls: {result.result()}"
            await asyncio.sleep(0.5)
        await latest.signal("cancel", {"reason": "late cancel"})
        summary = await asyncio.wait_for(result, timeout=300)
    finally:
        result.cancel()
    # the last run: started by continue-as-new with the state carried, then cancelled
    await replay_and_record(latest, "continued_as_new_then_cancelled", gzip_it=True)
    lengths = await runs_of(stack.client, handle.id)
    assert len(lengths) > 5
    assert max(lengths) < 2000
    assert summary.status == "cancelled"
    assert summary.counts.cancelled == 4


async def _poll_count(handle: WorkflowHandle[Any, Any]) -> int:
    """The batch's poll count; -1 when a query times out, which happens while the worker replays a
    run on a busy machine (the test server answers "Timeout expired", or the query's deadline
    passes), so the caller asks again."""
    try:
        return (await handle.query("status", result_type=StatusQuery)).poll_count
    except RPCError as exc:
        if "Timeout expired" not in exc.message and "deadline exceeded" not in exc.message:
            raise
        return -1


async def test_a_forgotten_provider_batch_fails_after_five_polls_over_the_schedule(ts_stack: Stack) -> None:
    stack = ts_stack
    batch_id = uuid.uuid4().hex[:10]
    handle = await start(stack, batch_id=batch_id, requests=chat_requests(5))  # default schedule
    while True:  # no result() awaited yet: the server keeps its clock still
        status = await handle.query("status", result_type=StatusQuery)
        if status.shards and status.shards[0].provider_batch_id:
            break
        await asyncio.sleep(0.05)
    provider_batch_id = status.shards[0].provider_batch_id
    assert provider_batch_id
    del stack.emulator.state.batches[provider_batch_id]  # what a provider that lost state answers: 404
    with pytest.raises(WorkflowFailureError) as failure:
        await asyncio.wait_for(handle.result(), timeout=120)
    summary = summary_from_failure(failure.value)
    assert summary is not None and summary.status == "failed" and summary.counts.failed == 5
    assert provider_batch_id in (summary.failure_reason or "")
    # five "not found" polls, spread over the schedule's first five delays (30 s .. 10 min, jittered)
    polls = poll_events(list((await handle.fetch_history()).events))
    assert len(polls) == 5
    elapsed = await elapsed_workflow_time(stack.client, handle.id)
    assert elapsed >= timedelta(seconds=0.95 * (30 + 60 + 120 + 300 + 600))

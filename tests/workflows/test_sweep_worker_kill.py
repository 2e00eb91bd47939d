"""The account sweep across a worker kill: the worker (a `durabatch worker` process that started the
sweeps itself, DURABATCH_SWEEP_SECONDS) is SIGKILLed in the middle of a sweep and another one is
started. The batches whose provider batch ended are woken and complete within seconds, though their
own polls are an hour away; the others are never signalled; the sweep is still one execution."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle

from durabatch.models import BatchSummary, StatusQuery, sweep_workflow_id
from durabatch.store.pool import Pool
from tests.helpers import eventually
from tests.stack import emulator_config
from tests.worker_process import ProcessStack, process_stack
from tests.workflows.test_sweep import hour_polling_batch, submitted, sweeps_pass, terminate, totals

pytestmark = pytest.mark.usefixtures("api_keys")

SWEEP_IDS = [sweep_workflow_id(p) for p in ("anthropic", "gemini", "openai")]


async def provider_events(handle: WorkflowHandle[Any, Any]) -> int:
    """`provider_event` signals in the batch's history (every run of it)."""
    history = await handle.fetch_history()
    return sum(
        1
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED
        and e.workflow_execution_signaled_event_attributes.signal_name == "provider_event"
    )


async def sweep_runs_since(
    client: Client, workflow_id: str, since: datetime
) -> list[WorkflowExecutionStatus]:
    query = f"WorkflowId = '{workflow_id}' AND StartTime >= '{since.isoformat()}'"
    return [w.status async for w in client.list_workflows(query) if w.status is not None]


async def slow_sweep_in_flight(stack: ProcessStack) -> bool:
    return bool((await stack.admin("GET", "/stats"))["faults_fired"].get("slow", 0))


async def test_a_worker_killed_mid_sweep_leaves_one_sweep_that_wakes_only_the_changed_batches(
    temporal_client: Client, pool: Pool, database_url: str, tmp_path: Path
) -> None:
    for workflow_id in SWEEP_IDS:  # a sweep an earlier run left, on another task queue
        await terminate(temporal_client, workflow_id)
    since = datetime.now(UTC).replace(microsecond=0)
    # every provider batch validates for an hour: none changes unless the test ends it
    config = emulator_config(validating_seconds=3600.0)
    async with process_stack(
        temporal_client, pool, database_url, config, log_dir=tmp_path, sweep_seconds=1.0
    ) as stack:
        sweep_id = sweep_workflow_id("openai")
        handles: list[WorkflowHandle[Any, BatchSummary]] = []
        try:
            for _ in range(4):
                handles.append(await hour_polling_batch(stack))

            async def all_submitted() -> bool:
                return all([await submitted(stack.pool, h.id.removeprefix("batch-")) for h in handles])

            await eventually(all_submitted, bool, interval=0.2)
            await sweeps_pass(stack.client, sweep_id, 2)  # they are watched, and unchanged
            changed, unchanged = handles[:2], handles[2:]

            # the next sweep's list call hangs, and the worker dies while it does
            await stack.fault(
                fault="slow", provider="openai", operation="batches.list", delay_seconds=30, count=1
            )
            await eventually(lambda: slow_sweep_in_flight(stack), bool, interval=0.1)
            for handle in changed:
                status = await handle.query("status", result_type=StatusQuery)
                provider_batch_id = status.shards[0].provider_batch_id
                await stack.admin("POST", f"/batches/{provider_batch_id}/advance", json={"to": "completed"})
            stack.workers.kill()
            killed_at = time.monotonic()
            await stack.workers.start()

            for handle in changed:
                summary = await asyncio.wait_for(handle.result(), 90)
                assert summary.status == "completed" and summary.counts.succeeded == 2, summary
            # an hour-long poll did not do it: the sweep of the second worker woke them
            assert time.monotonic() - killed_at < 45
            for handle in changed:
                assert await provider_events(handle) >= 1
            await sweeps_pass(stack.client, sweep_id, 2)
            for handle in unchanged:
                assert (await handle.describe()).status == WorkflowExecutionStatus.RUNNING
                assert await provider_events(handle) == 0

            # the second worker found the sweep running: still one execution, none started again
            done = await totals(stack.client, sweep_id)
            assert done.failed_sweeps == 0 and done.signalled >= 2, done

            async def one_sweep() -> list[WorkflowExecutionStatus]:
                return await sweep_runs_since(stack.client, sweep_id, since)

            runs = await eventually(
                one_sweep,
                lambda r: WorkflowExecutionStatus.RUNNING in r,
                what="the sweep listed",
            )
            assert runs.count(WorkflowExecutionStatus.RUNNING) == 1, runs
            assert set(runs) <= {WorkflowExecutionStatus.RUNNING, WorkflowExecutionStatus.CONTINUED_AS_NEW}
        finally:
            for handle in handles:
                await terminate(stack.client, handle.id)
            for workflow_id in SWEEP_IDS:
                await terminate(stack.client, workflow_id)

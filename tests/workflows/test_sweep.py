"""The account sweep: one list call per provider account wakes the batches whose provider status
changed, so a batch polling on a slow safety schedule still ends within seconds. The real chain:
the sweep workflow on the dev server, its activity listing the emulator over HTTP, comparing with
PostgreSQL and signalling the batch workflows."""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import openai
import pytest
from temporalio.client import Client, WorkflowHandle
from temporalio.service import RPCError
from temporalio.worker import Replayer

from durabatch.converter import DATA_CONVERTER
from durabatch.models import BatchSummary, StatusQuery, SweepTotals, SweepWorkflowInput, sweep_workflow_id
from durabatch.service import start_sweeps
from durabatch.settings import SettingsError, load_settings
from durabatch.store.pool import Pool
from tests.helpers import eventually
from tests.stack import API_KEY, HISTORIES, Stack, chat_requests, worker_stack
from workflows.sweep import AccountSweepWorkflow

pytestmark = pytest.mark.usefixtures("api_keys")

#: a poll schedule no test waits for: whatever ends a batch sooner, the sweep woke it
HOUR = [3600.0]

ANTHROPIC_REQUESTS = [
    {
        "custom_id": f"a{i}",
        "params": {
            "model": "claude-haiku-4-5",
            "max_tokens": 16,
            "messages": [{"role": "user", "content": "hi"}],
        },
    }
    for i in range(2)
]
GEMINI_REQUESTS = [
    {"key": f"g{i}", "request": {"contents": [{"role": "user", "parts": [{"text": f"q{i}"}]}]}}
    for i in range(2)
]


def new_id() -> str:
    return uuid.uuid4().hex[:10]


@asynccontextmanager
async def sweeping(
    stack: Stack, provider: str = "openai", **fields: Any
) -> AsyncIterator[WorkflowHandle[Any, Any]]:
    """A sweep of its own (a test id, on the stack's task queue), terminated at the end."""
    inp = SweepWorkflowInput(provider=provider, sweep_seconds=1.0, **fields)
    handle = await stack.client.start_workflow(
        AccountSweepWorkflow.run, inp, id=f"sweep-test-{new_id()}", task_queue=stack.settings.task_queue
    )
    try:
        yield handle
    finally:
        await terminate(stack.client, handle.id)


async def terminate(client: Client, workflow_id: str) -> None:
    try:
        await client.get_workflow_handle(workflow_id).terminate("test over")
    except RPCError:
        pass  # already closed


async def totals(client: Client, workflow_id: str) -> SweepTotals:
    # the latest run of the chain (a run id would pin the one that continued as new)
    return await client.get_workflow_handle(workflow_id).query(AccountSweepWorkflow.status)


async def sweeps_pass(client: Client, workflow_id: str, n: int) -> SweepTotals:
    """The totals once `n` more sweeps have completed."""
    target = (await totals(client, workflow_id)).sweeps + n

    async def done() -> bool:
        return (await totals(client, workflow_id)).sweeps >= target

    await eventually(done, bool, interval=0.2)
    return await totals(client, workflow_id)


async def submitted(pool: Pool, batch_id: str) -> bool:
    return bool(
        await pool.fetchval(
            "SELECT count(*) FROM provider_batches WHERE batch_id = $1 AND provider_batch_id IS NOT NULL",
            batch_id,
        )
    )


async def hour_polling_batch(stack: Stack) -> WorkflowHandle[Any, BatchSummary]:
    """An OpenAI batch of two requests polling hourly: whatever ends it sooner, the sweep woke it."""
    return await stack.start(
        batch_id=new_id(),
        provider="openai",
        endpoint="/v1/chat/completions",
        requests=chat_requests(2),
        poll_schedule_seconds=HOUR,
    )


def sdk(stack: Stack) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(api_key=API_KEY, base_url=stack.emulator.url + "/v1", max_retries=0)


async def foreign_batches(stack: Stack, n: int) -> list[str]:
    """Batches on the same account that are not ours: created with the openai SDK, never in the store."""
    client = sdk(stack)
    try:
        line = chat_requests(1, prefix="foreign")[0]
        f = await client.files.create(file=("in.jsonl", (json.dumps(line) + "\n").encode()), purpose="batch")
        ids = []
        for _ in range(n):
            b = await client.batches.create(
                input_file_id=f.id, endpoint="/v1/chat/completions", completion_window="24h"
            )
            ids.append(b.id)
        return ids
    finally:
        await client.close()


def test_the_sweep_setting_is_off_by_default_and_refuses_a_tight_loop() -> None:
    assert load_settings({}).sweep_seconds == 0
    assert load_settings({"DURABATCH_SWEEP_SECONDS": "30"}).sweep_seconds == 30
    for bad in ("-1", "0.5", "nan", "100000"):
        with pytest.raises(SettingsError, match="DURABATCH_SWEEP_SECONDS"):
            load_settings({"DURABATCH_SWEEP_SECONDS": bad})


async def test_the_worker_service_starts_one_sweep_per_provider_and_it_wakes_hour_long_polls(
    temporal_client: Client, pool: Pool, database_url: str
) -> None:
    async with worker_stack(temporal_client, pool, database_url) as stack:
        ids = [sweep_workflow_id(p) for p in ("anthropic", "gemini", "openai")]
        for workflow_id in ids:  # a sweep a crashed earlier run left on another task queue
            await terminate(stack.client, workflow_id)
        assert await start_sweeps(stack.client, stack.settings) == []  # the default: off
        settings = stack.settings.model_copy(update={"sweep_seconds": 1.0})
        try:
            assert await start_sweeps(stack.client, settings) == ids
            first = [(await stack.client.get_workflow_handle(i).describe()).run_id for i in ids]
            # a second worker finds them running: same runs, no second sweep
            assert await start_sweeps(stack.client, settings) == ids
            assert [(await stack.client.get_workflow_handle(i).describe()).run_id for i in ids] == first

            handles = [
                await stack.start(
                    batch_id=new_id(),
                    provider="openai",
                    endpoint="/v1/chat/completions",
                    requests=chat_requests(3),
                    poll_schedule_seconds=HOUR,
                ),
                await stack.start(
                    batch_id=new_id(),
                    provider="anthropic",
                    endpoint="/v1/messages",
                    requests=ANTHROPIC_REQUESTS,
                    poll_schedule_seconds=HOUR,
                ),
                await stack.start(
                    batch_id=new_id(),
                    provider="gemini",
                    endpoint="generateContent",
                    model="gemini-2.0-flash",
                    requests=GEMINI_REQUESTS,
                    poll_schedule_seconds=HOUR,
                ),
            ]
            for handle in handles:
                summary = await asyncio.wait_for(handle.result(), 60)
                assert summary.status == "completed", summary
                status = await handle.query("status", result_type=StatusQuery)
                assert status.provider_events >= 1
            for workflow_id in ids:
                done = await totals(stack.client, workflow_id)
                assert done.signalled >= 1 and done.failed_sweeps == 0, done
        finally:
            for workflow_id in ids:
                await terminate(stack.client, workflow_id)


async def test_a_batch_that_is_not_ours_never_causes_a_signal(
    temporal_client: Client, pool: Pool, database_url: str
) -> None:
    async with worker_stack(temporal_client, pool, database_url) as stack, sweeping(stack) as sweep:
        # ours, and it stops changing: the emulator keeps it finalizing (a marker in its metadata)
        handle = await stack.start(
            batch_id=f"{new_id()}__stuck_finalizing",
            provider="openai",
            endpoint="/v1/chat/completions",
            requests=chat_requests(2),
            poll_schedule_seconds=HOUR,
        )
        try:

            async def finalizing() -> bool:
                row = await stack.pool.fetchval(
                    "SELECT provider_status FROM provider_batches WHERE batch_id = $1",
                    handle.id[len("batch-") :],
                )
                return bool(row == "finalizing")

            await eventually(finalizing, bool, interval=0.2)
            before = await sweeps_pass(stack.client, sweep.id, 2)
            assert before.last_changed == 0 and before.signalled >= 1

            # another application's batch on the account goes through all its states to completed
            (foreign,) = await foreign_batches(stack, 1)
            client = sdk(stack)
            try:

                async def foreign_ended() -> bool:
                    return (await client.batches.retrieve(foreign)).status == "completed"

                await eventually(foreign_ended, bool, interval=0.2)
            finally:
                await client.close()
            after = await sweeps_pass(stack.client, sweep.id, 3)
            assert after.last_listed == 2  # it was listed beside ours...
            # ...and changed nothing and woke no one
            assert (after.changed, after.signalled) == (before.changed, before.signalled)
            status = await handle.query("status", result_type=StatusQuery)
            assert status.provider_events == before.signalled
            assert not await stack.pool.fetchval(
                "SELECT count(*) FROM provider_batches WHERE provider_batch_id = $1", foreign
            )
        finally:
            await handle.terminate("test over")


async def test_the_sweep_pages_through_the_account_to_find_an_older_batch_of_ours(
    temporal_client: Client, pool: Pool, database_url: str
) -> None:
    async with worker_stack(temporal_client, pool, database_url) as stack:
        handle = await hour_polling_batch(stack)
        batch_id = handle.id.removeprefix("batch-")
        await eventually(lambda: submitted(stack.pool, batch_id), bool, interval=0.2)
        await foreign_batches(stack, 150)  # newer than ours: ours is on the second page of 100

        # the control: one page per sweep never reaches it
        async with sweeping(stack, max_pages=1) as short:
            seen = await sweeps_pass(stack.client, short.id, 2)
            assert seen.last_listed == 100 and seen.signalled == 0
        assert (await handle.query("status", result_type=StatusQuery)).provider_events == 0

        async with sweeping(stack) as sweep:
            summary = await asyncio.wait_for(handle.result(), 60)
            assert summary.status == "completed" and summary.counts.succeeded == 2
            done = await totals(stack.client, sweep.id)
            assert done.signalled >= 1 and done.listed >= 151


async def test_the_sweep_continues_as_new_and_keeps_waking_batches(
    temporal_client: Client, pool: Pool, database_url: str
) -> None:
    async with worker_stack(temporal_client, pool, database_url) as stack:
        async with sweeping(stack, continue_as_new_after=2) as sweep:
            first_run = sweep.run_id

            async def continued_twice() -> bool:
                described = await stack.client.get_workflow_handle(sweep.id).describe()
                return described.run_id != first_run and (await totals(stack.client, sweep.id)).sweeps >= 5

            await eventually(continued_twice, bool, interval=0.2)
            handle = await hour_polling_batch(stack)
            summary = await asyncio.wait_for(handle.result(), 60)
            assert summary.status == "completed"
            done = await totals(stack.client, sweep.id)
            # the counts came along through every continue-as-new
            assert done.sweeps >= 5 and done.signalled >= 1 and done.failed_sweeps == 0
        # the first run, whole (it ended in continue-as-new), replays on today's code
        first = stack.client.get_workflow_handle(sweep.id, run_id=first_run)
        await record_sweep_history(first, "account_sweep")


async def record_sweep_history(handle: WorkflowHandle[Any, Any], name: str) -> None:
    """Replay the run (a nondeterminism fails the test) and, with DURABATCH_RECORD_HISTORIES=1,
    save it to tests/histories/ for the upgrade gate (tests/test_replay.py)."""
    history = await handle.fetch_history()
    await Replayer(workflows=[AccountSweepWorkflow], data_converter=DATA_CONVERTER).replay_workflow(history)
    if os.environ.get("DURABATCH_RECORD_HISTORIES") == "1":
        HISTORIES.mkdir(exist_ok=True)
        (HISTORIES / f"{name}@{handle.id}.json").write_text(history.to_json())


async def test_a_new_cadence_reaches_a_running_sweep(
    temporal_client: Client, pool: Pool, database_url: str
) -> None:
    async with (
        worker_stack(temporal_client, pool, database_url) as stack,
        sweeping(stack) as sweep,
    ):
        await sweeps_pass(stack.client, sweep.id, 1)
        await sweep.signal(AccountSweepWorkflow.configure, 3600.0)
        # the signal ends the current wait: one sweep, then the next is an hour away
        settled = await sweeps_pass(stack.client, sweep.id, 1)
        await asyncio.sleep(3)
        assert (await totals(stack.client, sweep.id)).sweeps <= settled.sweeps + 1
        await sweep.signal(AccountSweepWorkflow.configure, 1.0)  # ends the hour-long wait at once
        await sweeps_pass(stack.client, sweep.id, 1)

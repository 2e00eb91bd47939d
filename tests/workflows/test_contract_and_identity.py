"""The workflow's contract and identity on the real stack: a reused batch id, a failed batch's close,
the cancel reason, a quick poll after a cancel, a provider that forgot its batch, hostile inputs."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from temporalio.api.common.v1 import Payload, Payloads, WorkflowExecution, WorkflowType
from temporalio.api.enums.v1 import EventType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import SignalWorkflowExecutionRequest, StartWorkflowExecutionRequest
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowFailureError, WorkflowHandle
from temporalio.exceptions import ApplicationError

from durabatch.client import BatchClient
from durabatch.contract import BATCH_FAILED, BATCH_ID_IN_USE, INVALID_INPUT, summary_from_failure
from durabatch.store.pool import Pool
from tests.helpers import wait_status
from tests.stack import (
    Stack,
    assert_one_outcome_each,
    chat_requests,
    poll_events,
    replay_and_record,
    worker_stack,
)


def new_id() -> str:
    return uuid.uuid4().hex[:10]


@pytest.fixture(scope="module")
async def stack(
    temporal_client: Client, pool: Pool, database_url: str, api_keys: None
) -> AsyncIterator[Stack]:
    async with worker_stack(temporal_client, pool, database_url, queue_prefix="contract") as s:
        yield s


async def start_raw(stack: Stack, payload: Any, batch_id: str) -> WorkflowHandle[Any, Any]:
    """What `temporal workflow start --input` does: any JSON, the server's default id-reuse policy."""
    return await stack.client.start_workflow(
        "BatchWorkflow", payload, id=f"batch-{batch_id}", task_queue=stack.settings.task_queue
    )


async def failure_of(handle: WorkflowHandle[Any, Any]) -> ApplicationError:
    with pytest.raises(WorkflowFailureError) as info:
        await asyncio.wait_for(handle.result(), 60)
    cause = info.value.cause
    assert isinstance(cause, ApplicationError), cause
    return cause


async def no_workflow_task_failed(handle: WorkflowHandle[Any, Any]) -> None:
    history = await handle.fetch_history()
    assert history.events, "no history"
    failed = [e for e in history.events if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED]
    assert not failed, failed[0]


async def test_a_reused_batch_id_fails_naming_its_owner_and_leaves_the_first_run_alone(stack: Stack) -> None:
    batch_id = new_id()
    first = await stack.start(
        batch_id=batch_id, provider="openai", endpoint="/v1/chat/completions", requests=chat_requests(20)
    )
    summary = await first.result()
    assert summary.status == "completed" and summary.counts.succeeded == 20
    results_before = await stack.pool.fetch(
        "SELECT custom_id, outcome, body FROM results WHERE batch_id = $1 ORDER BY custom_id", batch_id
    )
    stats_before = await stack.admin("GET", "/stats")

    second = await start_raw(
        stack,
        {
            "batch_id": batch_id,
            "provider": "openai",
            "endpoint": "/v1/chat/completions",
            "requests": chat_requests(5, prefix="other"),
            "poll_schedule_seconds": [1.0],
        },
        batch_id,
    )
    assert second.result_run_id != first.result_run_id
    cause = await failure_of(second)
    assert cause.type == BATCH_ID_IN_USE and cause.non_retryable
    assert batch_id in cause.message and str(first.result_run_id) in cause.message
    await replay_and_record(second, "reused_batch_id")

    row = await stack.pool.fetchrow("SELECT status, owner_run_id FROM batches WHERE batch_id = $1", batch_id)
    assert row is not None and row["status"] == "completed" and row["owner_run_id"] == first.result_run_id
    results_after = await stack.pool.fetch(
        "SELECT custom_id, outcome, body FROM results WHERE batch_id = $1 ORDER BY custom_id", batch_id
    )
    assert results_after == results_before
    assert await stack.pool.fetchval("SELECT count(*) FROM requests WHERE batch_id = $1", batch_id) == 20
    assert (
        await stack.pool.fetchval("SELECT count(*) FROM provider_batches WHERE batch_id = $1", batch_id) == 1
    )
    stats_after = await stack.admin("GET", "/stats")
    assert stats_after["batches_created"] == stats_before["batches_created"]


async def test_a_failed_batch_closes_as_failed_carrying_its_summary(stack: Stack) -> None:
    batch_id = new_id()
    requests = chat_requests(3)
    requests[2]["custom_id"] = requests[0]["custom_id"]  # staging refuses a duplicate custom_id
    handle = await start_raw(
        stack,
        {
            "batch_id": batch_id,
            "provider": "openai",
            "endpoint": "/v1/chat/completions",
            "requests": requests,
            "poll_schedule_seconds": [1.0],
        },
        batch_id,
    )
    cause = await failure_of(handle)
    assert cause.type == BATCH_FAILED
    assert (await handle.describe()).status == WorkflowExecutionStatus.FAILED
    summary = summary_from_failure(cause)
    assert summary is not None and summary.status == "failed" and summary.batch_id == batch_id
    assert "custom_id" in (summary.failure_reason or "")
    await replay_and_record(handle, "failed_batch_closes_failed")


async def test_the_cancel_reason_is_kept_and_the_next_poll_comes_within_seconds(stack: Stack) -> None:
    batch_id = new_id()
    await stack.admin("PATCH", "/config", json={"validating_seconds": 3600})
    try:
        # a long schedule: without the quick poll after a cancel this batch would wait a minute
        handle = await stack.start(
            batch_id=batch_id,
            provider="openai",
            endpoint="/v1/chat/completions",
            requests=chat_requests(4),
            poll_schedule_seconds=[60.0],
        )
        await wait_status(handle, lambda s: s.status == "submitted")
    finally:
        await stack.admin("PATCH", "/config", json={"validating_seconds": 0.1})
    await handle.signal("cancel", {"reason": "wrong prompt"})
    status = await wait_status(handle, lambda s: s.cancel_requested)
    assert status.cancel_reason == "wrong prompt"
    summary = await asyncio.wait_for(handle.result(), 120)
    assert summary.status == "cancelled" and summary.cancel_reason == "wrong prompt"
    assert summary.counts.cancelled == 4
    row = await stack.pool.fetchrow("SELECT status, cancel_reason FROM batches WHERE batch_id = $1", batch_id)
    assert row is not None and row["cancel_reason"] == "wrong prompt" and row["status"] == "cancelled"

    # the timer after the provider cancel is the short one, whatever the schedule says
    history = await handle.fetch_history()
    events = list(history.events)
    cancel_at = next(
        i
        for i, e in enumerate(events)
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
        and e.activity_task_scheduled_event_attributes.activity_type.name == "cancel_provider_batches"
    )
    timer = next(e for e in events[cancel_at:] if e.event_type == EventType.EVENT_TYPE_TIMER_STARTED)
    assert timer.timer_started_event_attributes.start_to_fire_timeout.ToTimedelta().total_seconds() <= 5.0
    await replay_and_record(handle, "quick_poll_after_cancel")


async def test_a_provider_that_forgot_its_batch_ends_the_batch(stack: Stack) -> None:
    batch_id = new_id()
    await stack.admin("PATCH", "/config", json={"validating_seconds": 3600})
    try:
        handle = await stack.start(
            batch_id=batch_id, provider="openai", endpoint="/v1/chat/completions", requests=chat_requests(6)
        )
        status = await wait_status(handle, lambda s: any(sh.provider_batch_id for sh in s.shards))
    finally:
        await stack.admin("PATCH", "/config", json={"validating_seconds": 0.1})
    provider_batch_id = status.shards[0].provider_batch_id
    assert provider_batch_id
    # what a restarted emulator (or another organisation's key) answers: 404 for this batch
    del stack.emulator.state.batches[provider_batch_id]

    summary = await asyncio.wait_for(handle.result(), 60)
    assert summary.status == "failed"
    reason = summary.failure_reason or ""
    assert provider_batch_id in reason and "another account or organisation" in reason
    assert summary.counts.failed == 6 and summary.counts.succeeded == 0
    await assert_one_outcome_each(stack, batch_id)
    polls = poll_events(list((await handle.fetch_history()).events))
    assert len(polls) >= 5
    await no_workflow_task_failed(handle)
    await replay_and_record(handle, "provider_forgot_batch")


async def test_a_cancel_while_submitting_is_sent_at_once_and_polled_within_seconds(stack: Stack) -> None:
    batch_id = new_id()
    await stack.fault(fault="slow", operation="batches.create", delay_seconds=3, count=1)
    await stack.admin("PATCH", "/config", json={"validating_seconds": 3600})
    try:
        handle = await stack.start(
            batch_id=batch_id,
            provider="openai",
            endpoint="/v1/chat/completions",
            requests=chat_requests(3),
            poll_schedule_seconds=[60.0],
        )
        await wait_status(handle, lambda s: any(sh.state == "submitting" for sh in s.shards))
        await handle.signal("cancel", {"reason": "too early"})
        summary = await asyncio.wait_for(handle.result(), 120)
    finally:
        await stack.admin("PATCH", "/config", json={"validating_seconds": 0.1})
        await stack.admin("DELETE", "/faults")
    assert summary.status == "cancelled" and summary.cancel_reason == "too early"
    assert summary.counts.cancelled == 3 and len(summary.provider_batch_ids) == 1
    events = list((await handle.fetch_history()).events)
    cancels = [
        e.event_id
        for e in events
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
        and e.activity_task_scheduled_event_attributes.activity_type.name == "cancel_provider_batches"
    ]
    # submitted, then cancelled at the provider before any poll
    assert cancels and cancels[0] < poll_events(events)[0].event_id
    timers = [
        e.timer_started_event_attributes.start_to_fire_timeout.ToTimedelta().total_seconds()
        for e in events
        if e.event_type == EventType.EVENT_TYPE_TIMER_STARTED
    ]
    assert timers and timers[0] <= 5.0


HOSTILE = [
    ({"max_age_second": 60}, "max_age_second"),
    ({"poll_schedule": [1]}, "poll_schedule"),
    ({"max_age_seconds": 1e12}, "max_age_seconds"),
    ({"max_age_seconds": float("nan")}, "max_age_seconds"),
    ({"poll_schedule_seconds": []}, "poll_schedule_seconds"),
    ({"poll_schedule_seconds": [1, 86401]}, "poll_schedule_seconds[1]"),
    ({"handler_grace_seconds": -1}, "handler_grace_seconds"),
    (
        {"handlers": [{"type": "webhook", "url": "http://h/x", "max_attempts": -1}]},
        "handlers[0].max_attempts",
    ),
    ({"handlers": [{"type": "webhook", "url": "/relative"}]}, "handlers[0].url"),
    ({"handlers": [{"type": "webhook", "url": "http://h/x", "retries": 3}]}, "handlers[0].retries"),
    ({"metadata": {f"k{i}": "v" for i in range(65)}}, "metadata"),
    ({"state": {"staged": True, "status": "in_progress"}}, "state"),
]


@pytest.mark.parametrize(("extra", "field"), HOSTILE, ids=[f for _, f in HOSTILE])
async def test_hostile_inputs_fail_fast_naming_the_field(
    stack: Stack, extra: dict[str, Any], field: str
) -> None:
    batch_id = new_id()
    payload = {
        "batch_id": batch_id,
        "provider": "openai",
        "endpoint": "/v1/chat/completions",
        "requests": chat_requests(2),
        **extra,
    }
    handle = await start_raw(stack, payload, batch_id)
    cause = await failure_of(handle)
    assert cause.type == INVALID_INPUT and cause.non_retryable
    assert f"'{field}'" in cause.message, cause.message
    await no_workflow_task_failed(handle)
    if field in ("state", "handlers[0].max_attempts"):
        await replay_and_record(handle, f"invalid_{field.split('.')[-1]}")
    # refused before anything was staged or claimed
    assert await stack.pool.fetchval("SELECT count(*) FROM batches WHERE batch_id = $1", batch_id) == 0


async def start_raw_json(stack: Stack, data: bytes, batch_id: str) -> WorkflowHandle[Any, Any]:
    """Start with JSON bytes exactly as another SDK or the `temporal` CLI may send them (the Python
    converter cannot even encode a lone surrogate)."""
    request = StartWorkflowExecutionRequest(
        namespace=stack.client.namespace,
        workflow_id=f"batch-{batch_id}",
        workflow_type=WorkflowType(name="BatchWorkflow"),
        task_queue=TaskQueue(name=stack.settings.task_queue),
        input=Payloads(payloads=[Payload(metadata={"encoding": b"json/plain"}, data=data)]),
        request_id=str(uuid.uuid4()),
        identity="test",
    )
    await stack.client.workflow_service.start_workflow_execution(request)
    return stack.client.get_workflow_handle(f"batch-{batch_id}")


@pytest.mark.parametrize(
    ("fragment", "field"),
    [
        (b'"metadata": {"team": "a\\ud800b"}', "metadata.team"),
        (b'"model": "gpt\\udfff"', "model"),
        (b'"requests": [{"custom_id": "a\\ud800"}]', "requests[0]"),
        (b'"max_age_seconds": NaN', "max_age_seconds"),
        (b'"max_age_seconds": 1e400', "max_age_seconds"),
    ],
    ids=["surrogate-metadata", "surrogate-model", "surrogate-request", "nan", "1e400"],
)
async def test_json_no_python_client_could_send_fails_naming_the_field(
    stack: Stack, fragment: bytes, field: str
) -> None:
    batch_id = new_id()
    base = f'"batch_id": "{batch_id}", "provider": "openai", "endpoint": "/v1/chat/completions"'.encode()
    inline = b"" if b'"requests"' in fragment else b', "requests": [{"custom_id": "x"}]'
    handle = await start_raw_json(stack, b"{" + base + inline + b", " + fragment + b"}", batch_id)
    cause = await failure_of(handle)
    assert cause.type == INVALID_INPUT and f"'{field}'" in cause.message, cause.message
    await no_workflow_task_failed(handle)


async def test_a_hostile_cancel_reason_is_kept_short_and_sendable(stack: Stack) -> None:
    batch_id = new_id()
    await stack.admin("PATCH", "/config", json={"validating_seconds": 3600})
    try:
        handle = await stack.start(
            batch_id=batch_id, provider="openai", endpoint="/v1/chat/completions", requests=chat_requests(2)
        )
        await wait_status(handle, lambda s: s.status == "submitted")
    finally:
        await stack.admin("PATCH", "/config", json={"validating_seconds": 0.1})
    reason = b'{"reason": "stop \\ud800 now' + b"!" * 5000 + b'"}'
    await stack.client.workflow_service.signal_workflow_execution(
        SignalWorkflowExecutionRequest(
            namespace=stack.client.namespace,
            workflow_execution=WorkflowExecution(workflow_id=handle.id),
            signal_name="cancel",
            input=Payloads(payloads=[Payload(metadata={"encoding": b"json/plain"}, data=reason)]),
            identity="test",
            request_id=str(uuid.uuid4()),
        )
    )
    summary = await asyncio.wait_for(handle.result(), 120)
    assert summary.status == "cancelled"
    kept = summary.cancel_reason or ""
    assert kept.startswith("stop \\ud800 now") and len(kept) <= 1024 + 8
    await no_workflow_task_failed(handle)


async def test_batch_client_wait_and_status_read_a_failed_batchs_summary(stack: Stack) -> None:
    batch_id = new_id()
    requests = chat_requests(3)
    requests[1]["custom_id"] = requests[0]["custom_id"]  # staging refuses it: the batch fails
    client = BatchClient(stack.client, stack.settings, stack.settings.database_url)
    try:
        handle = await client.start(
            batch_id=batch_id, provider="openai", endpoint="/v1/chat/completions", requests=requests
        )
        summary = await asyncio.wait_for(handle.wait(), 60)
        assert summary.status == "failed" and "custom_id" in (summary.failure_reason or "")
        assert (await handle.status()).status == "failed"
        with pytest.raises(ValueError, match="batch_id"):
            await client.start(batch_id="no spaces", provider="openai", endpoint="/e", requests=requests)
    finally:
        await client.close()

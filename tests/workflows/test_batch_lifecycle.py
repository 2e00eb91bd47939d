"""BatchWorkflow's hard paths on the real stack: cancel in progress, expiry, outages, lost responses."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from temporalio.client import WorkflowExecutionStatus, WorkflowFailureError
from temporalio.exceptions import CancelledError

from durabatch.models import StatusQuery
from tests.helpers import wait_status
from tests.stack import (
    Stack,
    assert_one_outcome_each,
    chat_requests,
    outcomes,
    replay_and_record,
    write_jsonl,
)


def new_id() -> str:
    return uuid.uuid4().hex[:10]


async def test_cancel_in_progress_keeps_partial_results(stack: Stack, tmp_path: Path) -> None:
    batch_id = new_id()
    # 10,000 requests at 1 ms each: in progress for about 10 s, time enough to cancel on a busy machine
    uri = write_jsonl(tmp_path / "in.jsonl", chat_requests(10000))
    handle = await stack.start(
        batch_id=batch_id, provider="openai", endpoint="/v1/chat/completions", requests_uri=uri
    )
    await wait_status(handle, lambda s: s.counts.succeeded > 0 and s.status == "in_progress")
    await handle.signal("cancel", {"reason": "enough"})
    summary = await handle.result()
    await replay_and_record(handle, "cancel_in_progress")
    assert summary.status == "cancelled"
    c = summary.counts
    assert c.total == 10000 and c.succeeded > 0 and c.cancelled > 0
    assert c.succeeded + c.cancelled + c.failed == 10000
    await assert_one_outcome_each(stack, batch_id)


async def test_temporal_cancellation_does_the_same_as_the_signal(stack: Stack, tmp_path: Path) -> None:
    batch_id = new_id()
    uri = write_jsonl(tmp_path / "in.jsonl", chat_requests(10000))
    handle = await stack.start(
        batch_id=batch_id, provider="openai", endpoint="/v1/chat/completions", requests_uri=uri
    )
    await wait_status(handle, lambda s: s.counts.succeeded > 0)
    await handle.cancel()
    # after its cleanup the workflow closes as Canceled, not Completed
    with pytest.raises(WorkflowFailureError) as failure:
        await handle.result()
    assert isinstance(failure.value.cause, CancelledError)
    assert (await handle.describe()).status == WorkflowExecutionStatus.CANCELED
    await replay_and_record(handle, "temporal_cancel_closes_canceled")
    final = await handle.query("status", result_type=StatusQuery)
    assert final.status == "cancelled" and final.cancel_reason == "cancelled through Temporal"
    assert final.counts.succeeded > 0 and final.counts.cancelled > 0
    await assert_one_outcome_each(stack, batch_id)


async def test_max_age_expires_batch_keeping_partial_results(stack: Stack, tmp_path: Path) -> None:
    batch_id = new_id()
    # 10,000 requests take ~10 s at the emulator; a max age of 2 s ends the batch first
    uri = write_jsonl(tmp_path / "in.jsonl", chat_requests(10000))
    handle = await stack.start(
        batch_id=batch_id,
        provider="openai",
        endpoint="/v1/chat/completions",
        requests_uri=uri,
        max_age_seconds=2,
    )
    summary = await handle.result()
    await replay_and_record(handle, "max_age_expiry")
    assert summary.status == "expired"
    by = await outcomes(stack, batch_id)
    # what the provider finished before the cancel is kept; the rest is force-failed as expired
    assert by.get("succeeded", 0) > 0, by
    assert by.get("expired", 0) > 0, by
    assert sum(by.values()) == 10000
    assert summary.counts.succeeded == by["succeeded"]
    assert summary.failure_reason and "max age" in summary.failure_reason
    await assert_one_outcome_each(stack, batch_id)


async def test_max_age_with_a_failing_provider_cancel_still_ends_the_batch(
    stack: Stack, tmp_path: Path
) -> None:
    batch_id = new_id()
    # every cancel call fails: the batch must not hang on it, and what the provider still finishes
    # within the expiry grace is kept
    await stack.fault(fault="http_error", status=500, provider="openai", operation="batches.cancel", count=50)
    uri = write_jsonl(tmp_path / "in.jsonl", chat_requests(3000))
    try:
        handle = await stack.start(
            batch_id=batch_id,
            provider="openai",
            endpoint="/v1/chat/completions",
            requests_uri=uri,
            max_age_seconds=1,
        )
        summary = await handle.result()
    finally:
        await stack.admin("DELETE", "/faults")  # the module's other batches share this emulator
    assert summary.status == "expired"
    assert summary.failure_reason and "max age" in summary.failure_reason
    by = await outcomes(stack, batch_id)
    assert by == {"succeeded": 3000}, by
    await assert_one_outcome_each(stack, batch_id)


async def test_provider_expiry_with_partial_results(stack: Stack, tmp_path: Path) -> None:
    batch_id = new_id()
    await stack.fault(fault="expire_after", provider="openai", seconds=1.5, count=1)
    uri = write_jsonl(tmp_path / "in.jsonl", chat_requests(3000))
    summary = await stack.run(
        record="provider_expiry",
        batch_id=batch_id,
        provider="openai",
        endpoint="/v1/chat/completions",
        requests_uri=uri,
    )
    # the provider's own expiry: the provider batch ends `expired` with partial output
    assert summary.status == "expired"
    assert summary.counts.succeeded > 0 and summary.counts.expired > 0
    assert summary.counts.succeeded + summary.counts.expired == 3000
    await assert_one_outcome_each(stack, batch_id)


async def test_provider_outage_during_polling_is_waited_out(stack: Stack) -> None:
    batch_id = new_id()
    await stack.fault(
        fault="http_error", status=503, provider="openai", operation="batches.retrieve", count=5
    )
    summary = await stack.run(
        record="provider_outage",
        batch_id=batch_id,
        provider="openai",
        endpoint="/v1/chat/completions",
        requests=chat_requests(20),
    )
    assert summary.status == "completed" and summary.counts.succeeded == 20
    faults = await stack.admin("GET", "/faults")
    assert all(f["remaining"] == 0 for f in faults["faults"] if f["operation"] == "batches.retrieve")
    await stack.admin("DELETE", "/faults")


async def test_lost_create_response_creates_no_second_provider_batch(stack: Stack) -> None:
    batch_id = new_id()
    before = await stack.admin("GET", "/stats")
    await stack.fault(fault="lose_create_response", provider="openai", count=1)
    summary = await stack.run(
        record="lost_create_response",
        batch_id=batch_id,
        provider="openai",
        endpoint="/v1/chat/completions",
        requests=chat_requests(10),
    )
    after = await stack.admin("GET", "/stats")
    assert summary.status == "completed" and summary.counts.succeeded == 10
    assert (
        after["faults_fired"].get("lose_create_response", 0)
        == before["faults_fired"].get("lose_create_response", 0) + 1
    )
    assert after["batches_created"]["openai"] == before["batches_created"].get("openai", 0) + 1
    await assert_one_outcome_each(stack, batch_id)


async def test_cut_download_is_resumed_without_duplicates(stack: Stack) -> None:
    batch_id = new_id()
    await stack.fault(fault="truncate_download", provider="openai", count=2)
    summary = await stack.run(
        record="cut_download",
        batch_id=batch_id,
        provider="openai",
        endpoint="/v1/chat/completions",
        requests=chat_requests(500),
    )
    assert summary.status == "completed" and summary.counts.succeeded == 500
    await assert_one_outcome_each(stack, batch_id)
    await stack.admin("DELETE", "/faults")


async def test_bad_input_fails_before_anything_is_sent(stack: Stack) -> None:
    batch_id = new_id()
    before = await stack.admin("GET", "/stats")
    requests = chat_requests(5)
    requests[3]["custom_id"] = requests[1]["custom_id"]
    summary = await stack.run(
        record="bad_input",
        batch_id=batch_id,
        provider="openai",
        endpoint="/v1/chat/completions",
        requests=requests,
    )
    after = await stack.admin("GET", "/stats")
    assert summary.status == "failed"
    assert "line 4" in (summary.failure_reason or "") and "duplicate custom_id" in (
        summary.failure_reason or ""
    )
    assert after["batches_created"] == before["batches_created"]


async def test_ingest_retried_mid_file_resumes_from_its_heartbeat(stack: Stack, tmp_path: Path) -> None:
    from temporalio.api.enums.v1 import EventType

    batch_id = new_id()
    uri = write_jsonl(tmp_path / "in.jsonl", chat_requests(3000))
    # the first download is cut after ~900 lines, then every resume is cut before a byte arrives
    # until the client gives up: the activity itself must retry (resuming from a heartbeat that is
    # older than the last commit: tests/workflows/test_ingest_resume.py)
    await stack.fault(
        fault="truncate_download", provider="openai", operation="files.content", after_bytes=700_000, count=1
    )
    await stack.fault(
        fault="truncate_download", provider="openai", operation="files.content", after_bytes=0, count=5
    )
    handle = await stack.start(
        batch_id=batch_id, provider="openai", endpoint="/v1/chat/completions", requests_uri=uri
    )
    summary = await handle.result()
    await stack.admin("DELETE", "/faults")
    assert summary.status == "completed" and summary.counts.succeeded == 3000
    await assert_one_outcome_each(stack, batch_id)
    history = await handle.fetch_history()
    ingest_attempts = [
        e.activity_task_started_event_attributes.attempt
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED
    ]
    assert max(ingest_attempts) >= 2


async def test_quota_failure_is_submitted_again_as_a_new_round(stack: Stack) -> None:
    batch_id = new_id()
    before = await stack.admin("GET", "/stats")
    # OpenAI's enqueued-token limit: 200 on create, then the batch fails with token_limit_exceeded
    await stack.fault(fault="token_limit_exceeded", provider="openai", count=1)
    summary = await stack.run(
        record="quota_resubmit",
        batch_id=batch_id,
        provider="openai",
        endpoint="/v1/chat/completions",
        requests=chat_requests(12),
    )
    after = await stack.admin("GET", "/stats")
    assert summary.status == "completed" and summary.counts.succeeded == 12, summary
    assert len(summary.provider_batch_ids) == 2  # the refused one and the new round's
    assert after["batches_created"]["openai"] == before["batches_created"].get("openai", 0) + 2
    # one mechanism for rounds: the refused shard went again through start_retry_round
    history = await stack.client.get_workflow_handle(f"batch-{batch_id}").fetch_history()
    scheduled = [
        e.activity_task_scheduled_event_attributes.activity_type.name
        for e in history.events
        if e.HasField("activity_task_scheduled_event_attributes")
    ]
    assert "start_retry_round" in scheduled and "start_round" not in scheduled
    rounds = await stack.pool.fetch(
        "SELECT round, provider_status FROM provider_batches WHERE batch_id = $1 ORDER BY round", batch_id
    )
    assert [(r["round"], r["provider_status"]) for r in rounds] == [(0, "failed"), (1, "completed")]
    assert await stack.pool.fetchval("SELECT DISTINCT round FROM results WHERE batch_id = $1", batch_id) == 1
    await assert_one_outcome_each(stack, batch_id)

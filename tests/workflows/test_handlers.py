"""Completion handlers: called after results are recorded, at most once after a success."""

from __future__ import annotations

import os
import uuid
from typing import Any

import pytest
from temporalio import activity
from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.enums.v1 import EventType
from temporalio.api.workflowservice.v1 import ResetWorkflowExecutionRequest
from temporalio.client import WorkflowHandle, WorkflowUpdateFailedError
from temporalio.service import RPCError
from temporalio.worker import Worker

from durabatch.models import BatchSummary, RedispatchResult
from durabatch.webhook_receiver import WebhookReceiver
from durabatch.webhooks import sign
from tests.helpers import wait_status
from tests.stack import Stack, chat_requests, replay_and_record

SECRET_ENV = "DURABATCH_TEST_WEBHOOK_SECRET"
SECRET = "whsec-test-4f9a1c"


@pytest.fixture(autouse=True)
def webhook_secret() -> None:
    os.environ[SECRET_ENV] = SECRET


def new_id() -> str:
    return uuid.uuid4().hex[:10]


async def test_failing_webhook_succeeds_after_retries_and_is_delivered_once(stack: Stack) -> None:
    async with WebhookReceiver(secret=SECRET, fail_first=2) as receiver:
        batch_id = new_id()
        handle = await stack.start(
            batch_id=batch_id,
            provider="openai",
            endpoint="/v1/chat/completions",
            requests=chat_requests(5),
            handlers=[{"type": "webhook", "url": receiver.url, "secret_env": SECRET_ENV}],
        )
        summary = await handle.result()
    await replay_and_record(handle, "handler_retries")
    assert receiver.attempts == 3
    assert len(receiver.accepted) == 1 and receiver.rejected == []
    delivered = receiver.accepted[0]
    # the receiver got the summary as a JSON object, after the results were recorded
    assert delivered.body["batch_id"] == batch_id and delivered.body["status"] == "completed"
    assert delivered.body["counts"]["succeeded"] == 5
    assert delivered.idempotency_key == f"batch-{batch_id}:handler:0"
    assert summary.handlers[0].status == "succeeded"
    stored = await stack.pool.fetchrow(
        "SELECT status, attempts FROM handler_deliveries WHERE batch_id = $1 AND handler_index = 0", batch_id
    )
    assert stored is not None
    assert stored["status"] == "succeeded" and stored["attempts"] == 3
    assert SECRET not in summary.model_dump_json()


async def test_redispatch_reruns_only_failed_handlers(stack: Stack) -> None:
    async with (
        WebhookReceiver(secret=SECRET) as good,
        WebhookReceiver(secret=SECRET, fail_first=10**6) as bad,
    ):
        batch_id = new_id()
        handle = await stack.start(
            batch_id=batch_id,
            provider="openai",
            endpoint="/v1/chat/completions",
            requests=chat_requests(3),
            handlers=[
                {"type": "webhook", "url": good.url, "secret_env": SECRET_ENV, "max_attempts": 1},
                {"type": "webhook", "url": bad.url, "secret_env": SECRET_ENV, "max_attempts": 1},
            ],
            handler_grace_seconds=120,
        )
        await wait_status(handle, lambda st: [h.status for h in st.handlers] == ["succeeded", "failed"])
        bad.fail_remaining = 0  # the receiver is fixed
        result = await handle.execute_update("redispatch_handlers", result_type=RedispatchResult)
        assert [h.status for h in result.handlers] == ["succeeded", "succeeded"]
        summary = await handle.result()
        await replay_and_record(handle, "redispatch_handlers")
        with pytest.raises((WorkflowUpdateFailedError, RPCError)):  # closed: no update accepted
            await handle.execute_update("redispatch_handlers", result_type=RedispatchResult)
    assert len(good.accepted) == 1 and len(bad.accepted) == 1
    assert summary.status == "completed"


async def test_reset_to_start_never_runs_a_succeeded_handler_again(stack: Stack) -> None:
    async with WebhookReceiver(secret=SECRET) as receiver:
        batch_id = new_id()
        handle = await stack.start(
            batch_id=batch_id,
            provider="openai",
            endpoint="/v1/chat/completions",
            requests=chat_requests(5),
            handlers=[{"type": "webhook", "url": receiver.url, "secret_env": SECRET_ENV}],
        )
        first = await handle.result()
        again = await reset_to_start(stack, handle)
    assert first.status == again.status == "completed"
    assert len(receiver.accepted) == 1
    assert again.counts == first.counts
    assert again.provider_batch_ids == first.provider_batch_ids  # no second provider batch either


async def reset_to_start(stack: Stack, handle: WorkflowHandle[Any, BatchSummary]) -> BatchSummary:
    """Reset the ended batch to its first workflow task, so it runs again, and wait for it."""
    history = await handle.fetch_history()
    first_task = next(
        e.event_id for e in history.events if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED
    )
    desc = await handle.describe()
    reset = await stack.client.workflow_service.reset_workflow_execution(
        ResetWorkflowExecutionRequest(
            namespace=stack.client.namespace,
            workflow_execution=WorkflowExecution(workflow_id=handle.id, run_id=desc.run_id),
            reason="test: replay the whole batch",
            workflow_task_finish_event_id=first_task,
            request_id=str(uuid.uuid4()),
        )
    )
    return await stack.client.get_workflow_handle(
        handle.id, run_id=reset.run_id, result_type=BatchSummary
    ).result()


async def test_custom_activity_handler_on_the_users_own_queue_runs_once(stack: Stack) -> None:
    """A handler that lives in the user's own worker: called by name on its task queue, retried
    until it succeeds, and never called again, even when the batch is reset to its start."""
    calls: list[dict[str, Any]] = []

    @activity.defn(name="notify_data_team")
    async def notify_data_team(inp: dict[str, Any]) -> None:
        calls.append(inp)
        if len(calls) == 1:
            raise RuntimeError("the data team's service is down")

    queue = f"user-handlers-{uuid.uuid4().hex[:6]}"
    async with Worker(stack.client, task_queue=queue, activities=[notify_data_team]):
        batch_id = new_id()
        handle = await stack.start(
            batch_id=batch_id,
            provider="openai",
            endpoint="/v1/chat/completions",
            requests=chat_requests(4),
            handlers=[{"type": "activity", "name": "notify_data_team", "task_queue": queue}],
        )
        first = await handle.result()
        assert len(calls) == 2, "retried once after the failure"
        again = await reset_to_start(stack, handle)
    assert first.handlers[0].status == again.handlers[0].status == "succeeded"
    assert len(calls) == 2, "a succeeded handler never runs again"
    received = calls[-1]
    assert received["batch_id"] == batch_id
    assert received["idempotency_key"] == f"batch-{batch_id}:handler:0"
    assert received["summary"]["status"] == "completed"
    assert received["summary"]["counts"]["succeeded"] == 4


def test_signature_helper_rejects_altered_and_replayed_bodies() -> None:
    from durabatch.webhooks import WebhookVerificationError, verify_signature

    body = b'{"batch_id": "b1"}'
    signature = sign(SECRET, 1_000, body)
    verify_signature(SECRET, body, "1000", signature, now=1_010)
    with pytest.raises(WebhookVerificationError, match="altered"):
        verify_signature(SECRET, b'{"batch_id": "b2"}', "1000", signature, now=1_010)
    with pytest.raises(WebhookVerificationError, match="replayed"):
        verify_signature(SECRET, body, "1000", signature, now=1_000 + 3600)
    with pytest.raises(WebhookVerificationError):
        verify_signature("other-secret", body, "1000", signature, now=1_010)


def test_replay_guard_rejects_a_delivery_sent_again_within_the_tolerance() -> None:
    from durabatch.webhooks import ReplayGuard, WebhookVerificationError, verify_signature

    guard = ReplayGuard(tolerance_seconds=300)
    body = b'{"batch_id": "b1"}'
    first = sign(SECRET, 1_000, body)
    verify_signature(SECRET, body, "1000", first, now=1_010, replay_guard=guard)
    with pytest.raises(WebhookVerificationError, match="replayed"):
        verify_signature(SECRET, body, "1000", first, now=1_020, replay_guard=guard)
    # durabatch's own retry is signed afresh: accepted (the receiver dedupes on Idempotency-Key)
    retry = sign(SECRET, 1_030, body)
    verify_signature(SECRET, body, "1030", retry, now=1_030, replay_guard=guard)
    # a rejected (altered) body is not remembered, and entries past the window are forgotten
    with pytest.raises(WebhookVerificationError, match="altered"):
        verify_signature(SECRET, b"{}", "1040", sign(SECRET, 1_040, body), now=1_040, replay_guard=guard)
    assert len(guard) == 2
    guard.remember("v1=later", 2_000, now=2_000)
    assert len(guard) == 1

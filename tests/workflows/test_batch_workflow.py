"""BatchWorkflow on the real dev server, PostgreSQL and the emulator over HTTP."""

from __future__ import annotations

import uuid

from durabatch.emulator import expected_chat_response
from durabatch.results_format import result_body
from tests.stack import Stack, assert_one_outcome_each, chat_requests, replay_and_record


def new_id() -> str:
    return uuid.uuid4().hex[:10]


async def test_clean_openai_batch_lands_in_postgres(stack: Stack) -> None:
    batch_id = new_id()
    requests = chat_requests(40)
    summary = await stack.run(
        record="clean_batch",
        batch_id=batch_id,
        provider="openai",
        endpoint="/v1/chat/completions",
        requests=requests,
    )
    assert summary.status == "completed"
    assert summary.counts.total == 40 and summary.counts.succeeded == 40
    assert summary.model == "gpt-4o-mini"
    assert summary.input_tokens > 0 and summary.cost_usd is not None and summary.cost_usd > 0
    assert len(summary.provider_batch_ids) == 1
    await assert_one_outcome_each(stack, batch_id)
    row = await stack.pool.fetchrow(
        "SELECT body, line FROM results WHERE batch_id = $1 AND custom_id = 'r7'", batch_id
    )
    assert row is not None
    body = result_body("openai", dict(row))
    expected = expected_chat_response("openai", "/v1/chat/completions", requests[7]["body"])
    assert body["choices"][0]["message"] == expected["choices"][0]["message"]
    status = await stack.pool.fetchval("SELECT status FROM batches WHERE batch_id = $1", batch_id)
    assert status == "completed"


async def test_per_request_errors_are_recorded_as_failed(stack: Stack) -> None:
    batch_id = new_id()
    requests = chat_requests(10)
    requests[3]["custom_id"] = "bad__fail_400"
    requests[5]["custom_id"] = "boom__fail_500"
    summary = await stack.run(
        record="per_request_errors",
        batch_id=batch_id,
        provider="openai",
        endpoint="/v1/chat/completions",
        requests=requests,
    )
    assert summary.status == "completed"
    assert (summary.counts.succeeded, summary.counts.failed) == (8, 2)
    row = await stack.pool.fetchrow(
        "SELECT outcome, status_code, error FROM results WHERE batch_id = $1 AND custom_id = 'bad__fail_400'",
        batch_id,
    )
    assert row is not None
    assert row["outcome"] == "failed" and row["status_code"] == 400 and row["error"]
    await assert_one_outcome_each(stack, batch_id)


async def test_anthropic_and_gemini_batches_complete(stack: Stack) -> None:
    anthropic = [
        {
            "custom_id": f"a{i}",
            "params": {
                "model": "claude-haiku-4-5",
                "max_tokens": 64,
                "messages": [{"role": "user", "content": f"hi {i}"}],
            },
        }
        for i in range(5)
    ]
    gemini = [
        {"key": f"g{i}", "request": {"contents": [{"role": "user", "parts": [{"text": f"hello {i}"}]}]}}
        for i in range(5)
    ]
    a = await stack.run(
        record="anthropic_batch",
        batch_id=new_id(),
        provider="anthropic",
        endpoint="/v1/messages",
        requests=anthropic,
    )
    g = await stack.run(
        record="gemini_batch",
        batch_id=new_id(),
        provider="gemini",
        endpoint="generateContent",
        model="gemini-2.5-flash",
        requests=gemini,
    )
    assert (a.status, a.counts.succeeded) == ("completed", 5)
    assert (g.status, g.counts.succeeded) == ("completed", 5)


async def test_cancel_before_submit_never_calls_the_provider(stack: Stack) -> None:
    batch_id = new_id()
    before = await stack.admin("GET", "/stats")
    handle = await stack.client.start_workflow(
        "BatchWorkflow",
        {
            "batch_id": batch_id,
            "provider": "openai",
            "endpoint": "/v1/chat/completions",
            "requests": chat_requests(5),
            "poll_schedule_seconds": [1],
        },
        id=f"batch-{batch_id}",
        task_queue=stack.settings.task_queue,
        start_signal="cancel",
        start_signal_args=[{"reason": "changed my mind"}],
    )
    summary = await handle.result()
    await replay_and_record(handle, "cancel_before_submit")
    after = await stack.admin("GET", "/stats")
    assert summary["status"] == "cancelled"
    assert summary["counts"]["cancelled"] == 5
    assert summary["provider_batch_ids"] == []
    assert after["batches_created"] == before["batches_created"]
    await assert_one_outcome_each(stack, batch_id)

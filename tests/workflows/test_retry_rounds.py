"""Requests that failed retryably are sent again as retry rounds, up to max_rounds; the others
never; every attempt keeps its row and the final round's is the result."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from durabatch.client import BatchClient
from tests.stack import Stack, chat_requests


def mixed_requests() -> list[dict[str, Any]]:
    requests = chat_requests(4)
    for request, cid in zip(
        requests, ["ok", "flaky__fail_500", "bad__fail_400", "lost__missing"], strict=True
    ):
        request["custom_id"] = cid
    return requests


async def rows_by_request(stack: Stack, batch_id: str) -> dict[str, list[tuple[int, str]]]:
    rows = await stack.pool.fetch(
        "SELECT custom_id, round, outcome FROM results WHERE batch_id = $1 ORDER BY custom_id, round",
        batch_id,
    )
    found: dict[str, list[tuple[int, str]]] = {}
    for r in rows:
        found.setdefault(r["custom_id"], []).append((r["round"], r["outcome"]))
    return found


async def test_retryable_failures_are_retried_up_to_max_rounds(stack: Stack) -> None:
    batch_id = uuid.uuid4().hex[:10]
    created = (await stack.admin("GET", "/stats"))["batches_created"].get("openai", 0)
    handle = await stack.start(
        batch_id=batch_id,
        provider="openai",
        endpoint="/v1/chat/completions",
        requests=mixed_requests(),
        max_rounds=3,
    )
    summary = await asyncio.wait_for(handle.result(), 90)
    assert summary.status == "completed"
    assert summary.counts.succeeded == 1 and summary.counts.failed == 3 and summary.counts.retried == 2
    assert len(summary.provider_batch_ids) == 3
    assert (await stack.admin("GET", "/stats"))["batches_created"]["openai"] == created + 3
    rows = await rows_by_request(stack, batch_id)
    assert [o for _, o in rows["ok"]] == ["succeeded"]
    assert [o for _, o in rows["bad__fail_400"]] == ["failed"]  # a 400 is the request's fault
    assert len(rows["flaky__fail_500"]) == 3 and len(rows["lost__missing"]) == 3
    assert [r for r, _ in rows["flaky__fail_500"]] == sorted({r for r, _ in rows["flaky__fail_500"]})

    client = BatchClient(stack.client, stack.settings, stack.settings.database_url)
    try:
        final = [r async for r in client.get(batch_id).results()]
        assert len(final) == 4 and {r["custom_id"] for r in final} == {
            "ok",
            "flaky__fail_500",
            "bad__fail_400",
            "lost__missing",
        }
        every = [r async for r in client.get(batch_id).results(all_rounds=True)]
        assert len(every) == 1 + 1 + 3 + 3
        assert sum(1 for r in every if r["final"]) == 4
    finally:
        await client.close()


async def test_one_round_means_no_retry(stack: Stack) -> None:
    handle = await stack.start(
        batch_id=uuid.uuid4().hex[:10],
        provider="openai",
        endpoint="/v1/chat/completions",
        requests=mixed_requests(),
        max_rounds=1,
    )
    summary = await asyncio.wait_for(handle.result(), 60)
    assert summary.counts.retried == 0 and len(summary.provider_batch_ids) == 1
    assert summary.counts.succeeded == 1 and summary.counts.failed == 3


async def test_the_default_is_one_retry_round(stack: Stack) -> None:
    batch_id = uuid.uuid4().hex[:10]
    handle = await stack.start(
        batch_id=batch_id, provider="openai", endpoint="/v1/chat/completions", requests=mixed_requests()
    )
    summary = await asyncio.wait_for(handle.result(), 60)
    assert summary.counts.retried == 2 and len(summary.provider_batch_ids) == 2
    assert len((await rows_by_request(stack, batch_id))["flaky__fail_500"]) == 2


async def test_a_clean_batch_runs_one_round(stack: Stack) -> None:
    handle = await stack.start(
        batch_id=uuid.uuid4().hex[:10],
        provider="openai",
        endpoint="/v1/chat/completions",
        requests=chat_requests(3),
    )
    summary = await asyncio.wait_for(handle.result(), 60)
    assert (
        summary.counts.succeeded == 3 and summary.counts.retried == 0 and len(summary.provider_batch_ids) == 1
    )


async def test_a_request_that_fails_once_succeeds_in_the_retry_round_and_both_attempts_are_billed(
    stack: Stack,
) -> None:
    batch_id = uuid.uuid4().hex[:10]
    requests = chat_requests(3)
    requests[0]["body"]["messages"][0]["content"] = "question __flaky"  # a 500 the first time it runs
    handle = await stack.start(
        batch_id=batch_id, provider="openai", endpoint="/v1/chat/completions", requests=requests
    )
    summary = await asyncio.wait_for(handle.result(), 60)
    assert summary.status == "completed" and summary.counts.succeeded == 3 and summary.counts.retried == 1
    rows = await rows_by_request(stack, batch_id)
    assert [o for _, o in rows["r0"]] == ["failed", "succeeded"]
    billed = await stack.pool.fetchval("SELECT sum(input_tokens) FROM results WHERE batch_id = $1", batch_id)
    assert summary.input_tokens == billed


async def test_a_batch_s_shard_cap_splits_it_into_provider_batches_polled_together(stack: Stack) -> None:
    batch_id = uuid.uuid4().hex[:10]
    handle = await stack.start(
        batch_id=batch_id,
        provider="openai",
        endpoint="/v1/chat/completions",
        requests=chat_requests(25),
        max_requests_per_shard=10,
    )
    summary = await asyncio.wait_for(handle.result(), 60)
    assert summary.status == "completed" and summary.counts.succeeded == 25
    assert len(summary.provider_batch_ids) == 3
    sizes = await stack.pool.fetch(
        "SELECT request_count FROM provider_batches WHERE batch_id = $1 ORDER BY shard", batch_id
    )
    assert [r["request_count"] for r in sizes] == [10, 10, 5]

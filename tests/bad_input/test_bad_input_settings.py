"""Bad settings and sources: unknown provider or endpoint, unreadable requests, missing or wrong API
keys, a raw start input missing a field, and a file over the provider's request count (split).

Each refusal names the setting; the batch ends `failed` (or the workflow fails at once with
InvalidInput) before anything reaches a provider. A batch in flight through the whole module must
complete normally at the end (`test_zz_...`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from aiohttp import web
from temporalio.client import WorkflowFailureError
from temporalio.exceptions import ApplicationError

from activities import ActivityDeps
from durabatch.providers.base import BatchProvider
from durabatch.providers.openai import OPENAI_LIMITS
from durabatch.providers.registry import build_provider
from durabatch.service import worker_for
from durabatch.settings import Settings
from tests.bad_input.conftest import (
    Background,
    assert_background_untouched,
    expect_invalid_start,
    expect_refused,
    new_id,
    provider_requests,
)
from tests.stack import API_KEY, Stack, assert_one_outcome_each, chat_requests, write_jsonl

ENDPOINT = "/v1/chat/completions"


@pytest.fixture(scope="module")
async def files_server() -> AsyncIterator[str]:
    """A tiny HTTP server: /ok.jsonl serves three requests, everything else is 404."""
    import json

    body = "".join(json.dumps(r) + "\n" for r in chat_requests(3))

    async def ok(request: web.Request) -> web.Response:
        return web.Response(text=body, content_type="application/x-ndjson")

    app = web.Application()
    app.router.add_get("/ok.jsonl", ok)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    yield f"http://127.0.0.1:{port}"
    await runner.cleanup()


async def test_background_batch_is_in_flight(background: Background) -> None:
    status = await background.handle.query("status")
    assert status["status"] in ("submitted", "in_progress")


# ---- the start input -------------------------------------------------------------------------


async def test_unknown_provider(stack: Stack) -> None:
    batch_id = new_id()
    payload = {
        "batch_id": batch_id,
        "provider": "mistral",
        "endpoint": ENDPOINT,
        "requests": chat_requests(2),
    }
    cause = await expect_invalid_start(stack, payload, names=["'provider'", "mistral"], batch_id=batch_id)
    assert "openai" in cause.message  # it lists the known ones


async def test_raw_start_missing_provider_fails_at_once(stack: Stack) -> None:
    # what `temporal workflow start --type BatchWorkflow --input '{...}'` sends: a plain JSON object
    batch_id = new_id()
    payload = {"batch_id": batch_id, "endpoint": ENDPOINT, "requests": chat_requests(2)}
    await expect_invalid_start(stack, payload, names=["'provider'"], batch_id=batch_id)


async def test_raw_start_missing_requests_fails_at_once(stack: Stack) -> None:
    batch_id = new_id()
    payload = {"batch_id": batch_id, "provider": "openai", "endpoint": ENDPOINT}
    await expect_invalid_start(stack, payload, names=["'requests'", "requests_uri"], batch_id=batch_id)


async def test_unknown_endpoint(stack: Stack) -> None:
    await expect_refused(
        stack,
        endpoint="/v1/images/generations",
        requests=[{"custom_id": "a", "body": {"model": "gpt-4o-mini", "prompt": "a cat"}}],
        names=["endpoint", "/v1/images/generations", ENDPOINT],
    )


async def test_endpoint_of_another_provider(stack: Stack) -> None:
    await expect_refused(
        stack,
        provider="anthropic",
        endpoint=ENDPOINT,
        requests=[{"custom_id": "a", "params": {"max_tokens": 5, "messages": []}}],
        names=["endpoint", ENDPOINT, "/v1/messages"],
    )


# ---- where the requests are -------------------------------------------------------------------


async def test_path_that_does_not_exist(stack: Stack, tmp_path: Path) -> None:
    missing = str(tmp_path / "no-such-dir" / "requests.jsonl")
    await expect_refused(stack, requests_uri=missing, names=["requests_uri", missing, "no such file"])


async def test_url_that_404s(stack: Stack, files_server: str) -> None:
    url = f"{files_server}/missing.jsonl"
    await expect_refused(stack, requests_uri=url, names=["requests_uri", url, "HTTP 404"])


async def test_url_that_serves_requests_runs(stack: Stack, files_server: str) -> None:
    # the control case: the same server, an existing path
    summary = await stack.run(
        batch_id=new_id(), provider="openai", endpoint=ENDPOINT, requests_uri=f"{files_server}/ok.jsonl"
    )
    assert summary.status == "completed" and summary.counts.succeeded == 3


# ---- API keys ---------------------------------------------------------------------------------


async def test_missing_api_key(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY")
    summary = await expect_refused(
        stack, requests=chat_requests(3), names=["OPENAI_API_KEY", "not set"], staged=True
    )
    assert summary.counts.total == 3 and summary.counts.failed == 3 and summary.provider_batch_ids == []


async def test_missing_gemini_api_key(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GEMINI_API_KEY")
    requests = [
        {"key": f"g{i}", "request": {"contents": [{"parts": [{"text": f"hi {i}"}]}]}} for i in range(2)
    ]
    await expect_refused(
        stack,
        provider="gemini",
        endpoint="generateContent",
        model="gemini-2.5-flash",
        requests=requests,
        names=["GEMINI_API_KEY", "not set"],
        staged=True,
    )


async def test_blank_api_key(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "   ")
    await expect_refused(stack, requests=chat_requests(2), names=["OPENAI_API_KEY"], staged=True)


async def test_wrong_api_key(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    wrong = "-".join(["sk", "WRONGKEY", "bad-input", uuid.uuid4().hex])
    monkeypatch.setenv("OPENAI_API_KEY", wrong)
    before = await stack.admin("GET", "/stats")
    summary = await expect_refused(
        stack, requests=chat_requests(3), names=["401"], staged=True, nothing_sent=False
    )
    after = await stack.admin("GET", "/stats")
    # the upload was refused with 401: no file, no batch
    sent = provider_requests(after, "openai")
    assert sent.get("openai:batches.create", 0) == provider_requests(before, "openai").get(
        "openai:batches.create", 0
    )
    reason = summary.failure_reason or ""
    assert wrong not in reason and wrong[-12:] not in reason and "WRONGKEY" not in reason
    row = await stack.pool.fetchrow(
        "SELECT failure_reason FROM batches WHERE batch_id = $1", summary.batch_id
    )
    assert row is not None and wrong not in (row["failure_reason"] or "")


# ---- a file over the provider's request count ------------------------------------------------


SMALL_MAX_REQUESTS = 10


def _small_limits_factory(name: str, settings: Settings, http: httpx.AsyncClient) -> BatchProvider:
    provider = build_provider(name, settings, http)
    provider.limits = dataclasses.replace(provider.limits, max_requests=SMALL_MAX_REQUESTS)
    return provider


async def test_file_over_the_request_count_is_split(stack: Stack, tmp_path: Path) -> None:
    """OpenAI takes at most 50,000 requests per batch; durabatch plans shards from the provider's
    `ProviderLimits`. A worker whose OpenAI client says 10 (and an emulator that enforces 10) shows
    the split without a 50,001-line file: 15 requests become two provider batches, both complete."""
    assert OPENAI_LIMITS.max_requests == 50_000
    settings = stack.settings.model_copy(update={"task_queue": f"split-{new_id()}"})
    deps = ActivityDeps(
        pool=stack.pool, settings=settings, http=stack.http, provider_factory=_small_limits_factory
    )
    small = dataclasses.replace(stack, settings=settings)
    saved = await stack.admin("PATCH", "/config", json={})
    await stack.admin("PATCH", "/config", json={"openai_max_requests": SMALL_MAX_REQUESTS})
    before = await stack.admin("GET", "/stats")
    batch_id = new_id()
    try:
        async with worker_for(stack.client, settings, deps):
            uri = write_jsonl(tmp_path / "big.jsonl", chat_requests(SMALL_MAX_REQUESTS + 5))
            summary = await asyncio.wait_for(
                small.run(batch_id=batch_id, provider="openai", endpoint=ENDPOINT, requests_uri=uri), 60
            )
    finally:
        await stack.admin("PATCH", "/config", json={"openai_max_requests": saved["openai_max_requests"]})
    after = await stack.admin("GET", "/stats")
    assert summary.status == "completed", summary
    assert summary.counts.total == 15 and summary.counts.succeeded == 15
    assert len(summary.provider_batch_ids) == 2
    assert after["batches_created"]["openai"] == before["batches_created"].get("openai", 0) + 2
    shards = await stack.pool.fetch(
        "SELECT shard, count(*) AS n FROM requests WHERE batch_id = $1 GROUP BY shard ORDER BY shard",
        batch_id,
    )
    assert [(r["shard"], r["n"]) for r in shards] == [(0, 10), (1, 5)]
    await assert_one_outcome_each(stack, batch_id)


async def test_raw_start_wrong_type_fails_at_once(stack: Stack) -> None:
    batch_id = new_id()
    payload = {
        "batch_id": batch_id,
        "provider": "openai",
        "endpoint": ENDPOINT,
        "requests": chat_requests(2),
        "poll_schedule_seconds": "fast",
    }
    await expect_invalid_start(stack, payload, names=["'poll_schedule_seconds'"], batch_id=batch_id)


async def test_raw_start_not_an_object_fails_at_once(stack: Stack) -> None:
    batch_id = new_id()
    handle = await stack.client.start_workflow(
        "BatchWorkflow", ["openai", ENDPOINT], id=f"batch-{batch_id}", task_queue=stack.settings.task_queue
    )
    with pytest.raises(WorkflowFailureError) as info:
        await asyncio.wait_for(handle.result(), 15)
    assert isinstance(info.value.cause, ApplicationError) and info.value.cause.type == "InvalidInput"
    assert "expected a JSON object" in info.value.cause.message


async def test_raw_start_without_input_fails_at_once(stack: Stack) -> None:
    batch_id = new_id()
    handle = await stack.client.start_workflow(
        "BatchWorkflow", id=f"batch-{batch_id}", task_queue=stack.settings.task_queue
    )
    with pytest.raises(WorkflowFailureError) as info:
        await asyncio.wait_for(handle.result(), 15)
    assert isinstance(info.value.cause, ApplicationError) and info.value.cause.type == "InvalidInput"
    assert "no input" in info.value.cause.message


async def test_zz_background_batch_untouched(background: Background) -> None:
    assert API_KEY  # the module's worker still has the right keys
    await assert_background_untouched(background)

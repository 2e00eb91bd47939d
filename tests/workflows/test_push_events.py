"""Provider webhooks wake a batch at once; a lost or repeated delivery changes nothing; the
receiver refuses what is not a provider's signed delivery. The real chain: the emulator sends
signed events over HTTP to the receiver (uvicorn), which signals the workflow on the dev server."""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from standardwebhooks.webhooks import Webhook
from temporalio.client import Client

from durabatch.hooks.app import HooksApp
from durabatch.hooks.server import serve_hooks
from durabatch.hooks.wiring import deps_for
from durabatch.models import StatusQuery
from durabatch.store.pool import Pool, create_pool
from tests.conftest import free_port
from tests.stack import Stack, chat_requests, emulator_config, worker_stack

SECRET = "whsec_" + base64.b64encode(b"durabatch-test-webhook-secret-32b").decode()


@asynccontextmanager
async def push_stack(
    client: Client, pool: Pool, database_url: str, **emulator: Any
) -> AsyncIterator[tuple[Stack, str]]:
    port = free_port()
    config = emulator_config(
        webhook_url=f"http://127.0.0.1:{port}/hooks/{{provider}}", webhook_secret=SECRET, **emulator
    )
    async with worker_stack(client, pool, database_url, config) as stack:
        app = HooksApp({"openai": SECRET, "gemini": SECRET}, deps_for(stack.pool, stack.client))
        async with serve_hooks(app, port=port) as url:
            yield stack, url


def new_id() -> str:
    return uuid.uuid4().hex[:10]


async def events_of(pool: Pool, batch_id: str) -> list[str]:
    rows = await pool.fetch("SELECT event_type FROM provider_events WHERE batch_id = $1", batch_id)
    return [r["event_type"] for r in rows]


@pytest.mark.usefixtures("api_keys")
async def test_a_webhook_wakes_a_batch_whose_next_poll_is_an_hour_away(
    temporal_client: Client, pool: Pool, database_url: str
) -> None:
    async with push_stack(temporal_client, pool, database_url) as (stack, _):
        batch_id = new_id()
        handle = await stack.start(
            batch_id=batch_id,
            provider="openai",
            endpoint="/v1/chat/completions",
            requests=chat_requests(3),
            poll_schedule_seconds=[3600.0],
        )
        summary = await asyncio.wait_for(handle.result(), 60)
        assert summary.status == "completed" and summary.counts.succeeded == 3
        status = await handle.query("status", result_type=StatusQuery)
        assert status.provider_events == 1 and status.poll_count == 1
        assert await events_of(stack.pool, batch_id) == ["batch.completed"]


@pytest.mark.usefixtures("api_keys")
async def test_gemini_webhooks_wake_gemini_batches(
    temporal_client: Client, pool: Pool, database_url: str
) -> None:
    async with push_stack(temporal_client, pool, database_url) as (stack, _):
        batch_id = new_id()
        requests = [
            {"key": f"k{i}", "request": {"contents": [{"role": "user", "parts": [{"text": f"q{i}"}]}]}}
            for i in range(2)
        ]
        handle = await stack.start(
            batch_id=batch_id,
            provider="gemini",
            endpoint="generateContent",
            model="gemini-2.0-flash",
            requests=requests,
            poll_schedule_seconds=[3600.0],
        )
        summary = await asyncio.wait_for(handle.result(), 60)
        assert summary.status == "completed" and summary.counts.succeeded == 2
        assert await events_of(stack.pool, batch_id) == ["batch.succeeded"]


@pytest.mark.usefixtures("api_keys")
async def test_duplicated_deliveries_signal_once(
    temporal_client: Client, pool: Pool, database_url: str
) -> None:
    async with push_stack(temporal_client, pool, database_url, webhook_duplicates=2) as (stack, _):
        handle = await stack.start(
            batch_id=new_id(),
            provider="openai",
            endpoint="/v1/chat/completions",
            requests=chat_requests(2),
            poll_schedule_seconds=[3600.0],
        )
        summary = await asyncio.wait_for(handle.result(), 60)
        assert summary.status == "completed"
        for _ in range(100):  # the copies follow the first delivery
            stats = await stack.admin("GET", "/stats")
            if stats["requests"].get("webhook_delivered", 0) >= 3:
                break
            await asyncio.sleep(0.1)
        assert stats["requests"]["webhook_delivered"] == 3
        assert (await handle.query("status", result_type=StatusQuery)).provider_events == 1


@pytest.mark.usefixtures("api_keys")
async def test_a_lost_delivery_is_found_by_the_safety_poll(
    temporal_client: Client, pool: Pool, database_url: str
) -> None:
    async with push_stack(temporal_client, pool, database_url, webhook_drop=True) as (stack, _):
        handle = await stack.start(
            batch_id=new_id(),
            provider="openai",
            endpoint="/v1/chat/completions",
            requests=chat_requests(2),
            poll_schedule_seconds=[1.0],
        )
        summary = await asyncio.wait_for(handle.result(), 60)
        assert summary.status == "completed"
        assert (await handle.query("status", result_type=StatusQuery)).provider_events == 0
        assert (await stack.admin("GET", "/stats"))["requests"]["webhook_dropped"] >= 1


def signed(
    body: dict[str, Any], *, event_id: str | None = None, at: datetime | None = None
) -> tuple[bytes, dict[str, str]]:
    data = json.dumps(body).encode()
    msg_id = event_id or "msg_" + uuid.uuid4().hex
    when = at or datetime.now(UTC)
    headers = {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(when.timestamp())),
        "webhook-signature": Webhook(SECRET).sign(msg_id, when, data),
        "content-type": "application/json",
    }
    return data, headers


def batch_event(provider_batch_id: str, kind: str = "batch.completed") -> dict[str, Any]:
    return {"id": "evt_1", "type": kind, "created_at": 0, "data": {"id": provider_batch_id}}


@pytest.mark.usefixtures("api_keys")
async def test_the_receiver_refuses_what_is_not_a_signed_provider_delivery(
    temporal_client: Client, pool: Pool, database_url: str
) -> None:
    async with push_stack(temporal_client, pool, database_url) as (_stack, url), httpx.AsyncClient() as http:
        hook = f"{url}/hooks/openai"
        data, headers = signed(batch_event("batch_x"))
        bad = {**headers, "webhook-signature": "v1," + base64.b64encode(b"0" * 32).decode()}
        assert (await http.post(hook, content=data, headers=bad)).status_code == 401
        stale_data, stale = signed(batch_event("batch_x"), at=datetime.now(UTC) - timedelta(minutes=10))
        assert (await http.post(hook, content=stale_data, headers=stale)).status_code == 401
        unsigned = {"content-type": "application/json"}
        assert (await http.post(hook, content=data, headers=unsigned)).status_code == 401
        tampered = data.replace(b"batch_x", b"batch_y")
        assert (await http.post(hook, content=tampered, headers=headers)).status_code == 401
        assert (await http.post(f"{url}/hooks/mistral", content=data, headers=headers)).status_code == 404
        assert (await http.get(hook)).status_code == 405
        huge = b"x" * (2 << 20)
        assert (await http.post(hook, content=huge, headers=headers)).status_code == 413

        # verified, but not ours: acknowledged (or the provider would redeliver for days), once
        answer = await http.post(hook, content=data, headers=headers)
        assert answer.status_code == 200 and answer.json()["status"] == "ignored"
        again = await http.post(hook, content=data, headers=headers)
        assert again.status_code == 200 and again.json()["status"] == "duplicate"
        other_data, other = signed(
            {"id": "evt_2", "type": "fine_tuning.job.succeeded", "data": {"id": "ft_1"}}
        )
        assert (await http.post(hook, content=other_data, headers=other)).json()["status"] == "ignored"


async def test_the_receiver_answers_503_when_the_store_is_down(
    temporal_client: Client, database_url: str
) -> None:
    closed = await create_pool(database_url, min_size=1, max_size=1)
    await closed.close()
    port = free_port()
    app = HooksApp({"openai": SECRET}, deps_for(closed, temporal_client))
    async with serve_hooks(app, port=port) as url, httpx.AsyncClient() as http:
        data, headers = signed(batch_event("batch_z"))
        answer = await http.post(f"{url}/hooks/openai", content=data, headers=headers)
        assert answer.status_code == 503 and SECRET not in answer.text

"""The official anthropic SDK drives Message Batches against the emulator."""

from __future__ import annotations

from typing import Any, cast

import anthropic
import httpx
import pytest

from durabatch.emulator import expected_chat_response
from durabatch.emulator.server import RunningEmulator
from tests.emulator.helpers import ANTHROPIC_H, KEY
from tests.helpers import eventually


@pytest.fixture
async def client(emu: RunningEmulator):
    c = anthropic.AsyncAnthropic(api_key=KEY, base_url=emu.url, max_retries=0)
    yield c
    await c.close()


def req(cid: str, text: str = "hello there", **params):
    p = {"model": "claude-sonnet-4-5", "max_tokens": 64, "messages": [{"role": "user", "content": text}]}
    p.update(params)
    return {"custom_id": cid, "params": p}


async def test_lifecycle_and_results(client: anthropic.AsyncAnthropic) -> None:
    requests = [req(f"q{i}", f"question {i}") for i in range(10)]
    requests.append(req("bad", max_tokens=0))
    requests.append(req("boom__fail_500"))
    batch = await client.messages.batches.create(requests=requests)
    assert batch.processing_status == "in_progress"
    assert batch.request_counts.processing == 12 and batch.results_url is None

    ended = await eventually(
        lambda: client.messages.batches.retrieve(batch.id), lambda b: b.processing_status == "ended"
    )
    assert ended.request_counts.succeeded == 10 and ended.request_counts.errored == 2
    assert ended.ended_at is not None and ended.results_url is not None
    assert ended.results_url.startswith("http://127.0.0.1:")

    results = {r.custom_id: r.result async for r in await client.messages.batches.results(batch.id)}
    assert len(results) == 12
    for r in requests[:10]:
        got = results[r["custom_id"]]
        assert got.type == "succeeded"
        assert got.message.model_dump(exclude_none=True) == anthropic.types.Message.model_validate(
            expected_chat_response("anthropic", "/v1/messages", r["params"])
        ).model_dump(exclude_none=True)
    bad, boom = results["bad"], results["boom__fail_500"]
    assert bad.type == "errored" and bad.error.error.type == "invalid_request_error"
    assert boom.type == "errored" and boom.error.error.type == "api_error"

    deleted = await client.messages.batches.delete(batch.id)
    assert deleted.type == "message_batch_deleted"
    with pytest.raises(anthropic.NotFoundError):
        await client.messages.batches.retrieve(batch.id)


async def test_cancel_gives_canceled_results(client: anthropic.AsyncAnthropic, emu: RunningEmulator) -> None:
    emu.state.config.ms_per_request = 20.0
    batch = await client.messages.batches.create(requests=[req(f"c{i}") for i in range(100)])

    async def processed() -> int:
        return emu.state.batches[batch.id].timeline.processed(emu.state.now())

    await eventually(processed, lambda k: k > 0)
    canceling = await client.messages.batches.cancel(batch.id)
    assert canceling.processing_status == "canceling" and canceling.cancel_initiated_at is not None
    ended = await eventually(
        lambda: client.messages.batches.retrieve(batch.id), lambda b: b.processing_status == "ended"
    )
    counts = ended.request_counts
    assert counts.canceled > 0 and counts.succeeded > 0 and counts.succeeded + counts.canceled == 100
    types = [r.result.type async for r in await client.messages.batches.results(batch.id)]
    assert types.count("canceled") == counts.canceled


async def test_expiry_gives_expired_results(client: anthropic.AsyncAnthropic, emu: RunningEmulator) -> None:
    emu.state.config.ms_per_request = 10.0
    emu.state.config.expire_after_seconds = 0.4
    batch = await client.messages.batches.create(requests=[req(f"e{i}") for i in range(100)])
    ended = await eventually(
        lambda: client.messages.batches.retrieve(batch.id), lambda b: b.processing_status == "ended"
    )
    assert ended.request_counts.expired > 0 and ended.request_counts.succeeded > 0
    types = [r.result.type async for r in await client.messages.batches.results(batch.id)]
    assert types.count("expired") == ended.request_counts.expired


async def test_list_pagination(client: anthropic.AsyncAnthropic) -> None:
    ids = [(await client.messages.batches.create(requests=[req("a")])).id for _ in range(5)]
    page = await client.messages.batches.list(limit=2)
    assert [b.id for b in page.data] == ids[::-1][:2] and page.has_more
    assert [b.id async for b in client.messages.batches.list(limit=2)] == ids[::-1]


async def test_envelope_validation_is_synchronous(client: anthropic.AsyncAnthropic) -> None:
    with pytest.raises(anthropic.BadRequestError) as exc:
        await client.messages.batches.create(requests=[req("a"), req("a")])
    assert "custom_id" in str(exc.value)
    with pytest.raises(anthropic.BadRequestError):
        await client.messages.batches.create(requests=[req("has space")])
    with pytest.raises(anthropic.BadRequestError) as exc:
        await client.messages.batches.create(requests=[cast(Any, {"custom_id": "x"})])
    assert "requests.0.params: Field required" in str(exc.value)


async def test_realtime_messages(client: anthropic.AsyncAnthropic) -> None:
    params = req("x", "tell me")["params"]
    msg = await client.messages.create(**params)
    assert (
        msg.content[0].text
        == expected_chat_response("anthropic", "/v1/messages", params)["content"][0]["text"]
    )
    assert msg.usage.service_tier == "standard"


async def test_wrong_key_is_401(emu: RunningEmulator, http: httpx.AsyncClient) -> None:
    c = anthropic.AsyncAnthropic(api_key="wrong", base_url=emu.url, max_retries=0)
    with pytest.raises(anthropic.AuthenticationError) as exc:
        await c.messages.batches.list()
    await c.close()
    assert exc.value.body == {
        "type": "error",
        "error": {"type": "authentication_error", "message": "invalid x-api-key"},
        "request_id": exc.value.request_id,
    }
    r = await http.get("/v1/messages/batches", headers={"x-api-key": KEY})
    assert r.status_code == 400 and "anthropic-version" in r.json()["error"]["message"]
    r = await http.get("/v1/messages/batches", headers=ANTHROPIC_H)
    assert r.status_code == 200 and r.headers["request-id"].startswith("req_")

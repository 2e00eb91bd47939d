"""Anthropic client against scripted responses."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import httpx
import pytest

from durabatch.providers import errors
from durabatch.providers.anthropic import AnthropicProvider, anthropic_result, anthropic_status
from durabatch.providers.base import ProviderBatchRef, ProviderStatus
from tests.providers.conftest import SECRET, make_shard, mock_client

PARAMS = {
    "model": "claude-haiku-4-5",
    "max_tokens": 5,
    "messages": [{"role": "user", "content": "hi\u2028there"}],
}


def _provider(handler) -> AnthropicProvider:
    return AnthropicProvider(mock_client(handler), "http://a.test", lambda: SECRET, retry_delay=0.001)


def _batch(id: str, created: str, processing: int = 3, **fields) -> dict[str, Any]:
    return {
        "id": id,
        "type": "message_batch",
        "processing_status": "in_progress",
        "request_counts": {
            "processing": processing,
            "succeeded": 0,
            "errored": 0,
            "canceled": 0,
            "expired": 0,
        },
        "created_at": created,
        "cancel_initiated_at": None,
        "results_url": None,
        **fields,
    }


async def test_submit_streams_requests_body() -> None:
    seen: dict[str, Any] = {}

    async def handler(request: httpx.Request) -> httpx.Response:
        assert request.headers["x-api-key"] == SECRET
        assert request.headers["anthropic-version"] == "2023-06-01"
        seen["body"] = json.loads(await request.aread())
        return httpx.Response(200, json=_batch("msgbatch_1", "2026-01-01T00:00:00Z"))

    shard = make_shard(endpoint="/v1/messages", bodies=[("a", PARAMS), ("b", PARAMS)])
    ref = await _provider(handler).submit(shard)
    assert ref.provider_batch_id == "msgbatch_1"
    assert seen["body"] == {
        "requests": [{"custom_id": "a", "params": PARAMS}, {"custom_id": "b", "params": PARAMS}]
    }


async def test_find_submitted_keeps_oldest_and_cancels_duplicates() -> None:
    cancelled = []
    # attempt started at 2026-01-01T00:00:00Z = 1767225600
    page1 = [
        _batch("msgbatch_new", "2026-01-01T00:00:30.5+00:00"),
        _batch("msgbatch_other_size", "2026-01-01T00:00:20Z", processing=7),
        _batch("msgbatch_owned_by_other_shard", "2026-01-01T00:00:15Z"),
    ]
    page2 = [
        _batch("msgbatch_old", "2026-01-01T00:00:10Z"),
        _batch("msgbatch_ancient", "2025-12-01T00:00:00Z"),
    ]

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/cancel"):
            cancelled.append(request.url.path.split("/")[4])
            return httpx.Response(200, json={})
        after = request.url.params.get("after_id")
        data = page2 if after else page1
        return httpx.Response(200, json={"data": data, "has_more": True, "last_id": data[-1]["id"]})

    shard = make_shard(endpoint="/v1/messages", bodies=[("a", PARAMS)] * 3, attempt_started_at=1767225600)
    shard = replace(shard, exclude_batch_ids=frozenset({"msgbatch_owned_by_other_shard"}))
    found = await _provider(handler).find_submitted(shard)
    assert found is not None and found.provider_batch_id == "msgbatch_old"
    assert cancelled == ["msgbatch_new"]


async def test_find_submitted_none() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"data": [], "has_more": False})

    assert await _provider(handler).find_submitted(make_shard(endpoint="/v1/messages")) is None


def test_status_mapping() -> None:
    running = anthropic_status(_batch("b", "2026-01-01T00:00:00Z"))
    assert running.state == "in_progress" and running.counts.processing == 3 and running.counts.total == 3
    ended = _batch("b", "2026-01-01T00:00:00Z", processing_status="ended", results_url="http://a.test/r")
    ended["request_counts"] = {"processing": 0, "succeeded": 2, "errored": 1, "canceled": 0, "expired": 0}
    s = anthropic_status(ended)
    assert (s.state, s.counts.succeeded, s.counts.failed, s.output_location) == (
        "completed",
        2,
        1,
        "http://a.test/r",
    )
    ended["request_counts"]["expired"] = 1
    assert anthropic_status(ended).state == "expired"
    ended["cancel_initiated_at"] = "2026-01-01T00:01:00Z"
    assert anthropic_status(ended).state == "cancelled"
    assert anthropic_status({"processing_status": "whatever"}).state == "in_progress"


def test_result_mapping() -> None:
    ok = anthropic_result(
        {
            "custom_id": "a",
            "result": {
                "type": "succeeded",
                "message": {
                    "usage": {
                        "input_tokens": 11,
                        "output_tokens": 36,
                        "cache_read_input_tokens": 4,
                        "cache_creation_input_tokens": 0,
                    }
                },
            },
        }
    )
    assert ok and (ok.outcome, ok.input_tokens, ok.cached_tokens, ok.output_tokens) == (
        "succeeded",
        15,
        4,
        36,
    )
    err = anthropic_result(
        {
            "custom_id": "b",
            "result": {
                "type": "errored",
                "error": {
                    "type": "error",
                    "error": {"type": "invalid_request_error", "message": "too large"},
                },
            },
        }
    )
    assert (
        err
        and err.outcome == "failed"
        and err.error == {"type": "invalid_request_error", "message": "too large"}
    )
    assert anthropic_result({"custom_id": "c", "result": {"type": "canceled"}}).outcome == "cancelled"  # type: ignore[union-attr]
    assert anthropic_result({"custom_id": "d", "result": {"type": "expired"}}).outcome == "expired"  # type: ignore[union-attr]


async def test_results_url_on_foreign_host_is_read_from_base_url() -> None:
    hosts = []

    def handler(request: httpx.Request) -> httpx.Response:
        hosts.append((request.url.host, request.url.path))
        return httpx.Response(200, content=b'{"custom_id":"a","result":{"type":"canceled"}}\r\n')

    status = ProviderStatus(
        state="cancelled",
        provider_status="ended",
        output_location="https://evil.test/v1/messages/batches/b/results",
    )
    lines = [
        x
        async for x in _provider(handler).results(
            ProviderBatchRef(provider="anthropic", provider_batch_id="b"), status
        )
    ]
    assert [x.custom_id for x in lines] == ["a"]
    assert hosts == [("a.test", "/v1/messages/batches/b/results")]


async def test_cancel_after_end_is_fine() -> None:
    sent: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(
            400, json={"type": "error", "error": {"type": "invalid_request_error", "message": "ended"}}
        )

    await _provider(handler).cancel(ProviderBatchRef(provider="anthropic", provider_batch_id="b"))
    # one cancel to the batch's route with the key; the 400 (already ended) is final, not retried
    assert [(r.method, r.url.path) for r in sent] == [("POST", "/v1/messages/batches/b/cancel")]
    assert sent[0].headers["x-api-key"] == SECRET


async def test_404_right_after_create_is_retryable() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            return httpx.Response(200, json=_batch("msgbatch_1", "2026-01-01T00:00:00Z"))
        return httpx.Response(
            404, json={"type": "error", "error": {"type": "not_found_error", "message": "nope"}}
        )

    provider = _provider(handler)
    ref = await provider.submit(make_shard(endpoint="/v1/messages", bodies=[("a", PARAMS)]))
    with pytest.raises(errors.ProviderUnavailable):
        await provider.status(ref)
    with pytest.raises(errors.NotFound):
        await provider.status(ProviderBatchRef(provider="anthropic", provider_batch_id="msgbatch_1"))

"""Gemini client against scripted responses."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import httpx

from durabatch.providers.base import ProviderBatchRef
from durabatch.providers.gemini import GeminiProvider
from durabatch.providers.gemini_wire import gemini_status
from durabatch.providers.jsonl import split_lines
from tests.providers.conftest import SECRET, make_shard, mock_client

REQ = {"contents": [{"parts": [{"text": "hi"}]}]}


def _provider(handler, **kw) -> GeminiProvider:
    return GeminiProvider(mock_client(handler), "http://g.test", lambda: SECRET, retry_delay=0.001, **kw)


def _op(state: str, **extra) -> dict[str, Any]:
    return {
        "name": "batches/abc",
        "metadata": {"name": "batches/abc", "displayName": "t", "state": state, **extra},
    }


async def test_submit_inline() -> None:
    seen: dict[str, Any] = {}

    async def handler(request: httpx.Request) -> httpx.Response:
        assert request.headers["x-goog-api-key"] == SECRET
        seen["path"] = request.url.path
        seen["body"] = json.loads(await request.aread())
        return httpx.Response(200, json=_op("BATCH_STATE_PENDING"))

    shard = make_shard(
        endpoint="generateContent", bodies=[("k1", REQ), ("k2", REQ)], model="gemini-2.5-flash"
    )
    shard = replace(shard, byte_size=100)
    ref = await _provider(handler).submit(shard)
    assert ref.provider_batch_id == "batches/abc"
    assert seen["path"] == "/v1beta/models/gemini-2.5-flash:batchGenerateContent"
    batch = seen["body"]["batch"]
    assert batch["displayName"] == shard.tag
    assert batch["inputConfig"]["requests"]["requests"] == [
        {"request": REQ, "metadata": {"key": "k1"}},
        {"request": REQ, "metadata": {"key": "k2"}},
    ]


async def test_submit_file_upload() -> None:
    seen: dict[str, Any] = {}

    async def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/upload/v1beta/files" and "upload_id" not in request.url.params:
            seen["start"] = request.headers
            return httpx.Response(
                200, headers={"x-goog-upload-url": "http://g.test/upload/v1beta/files?upload_id=u1"}
            )
        if "upload_id" in request.url.params:
            seen["data_headers"] = request.headers
            seen["data"] = await request.aread()
            return httpx.Response(200, json={"file": {"name": "files/in1"}})
        seen["create"] = json.loads(await request.aread())
        return httpx.Response(200, json=_op("BATCH_STATE_PENDING"))

    shard = make_shard(
        endpoint="generateContent", bodies=[("k1", REQ), ("k2", REQ)], model="models/gemini-2.5-flash"
    )
    await _provider(handler).submit(shard)
    lines = [json.loads(x) for x in split_lines(seen["data"])]
    assert lines == [{"key": "k1", "request": REQ}, {"key": "k2", "request": REQ}]
    assert seen["start"]["x-goog-upload-header-content-length"] == str(len(seen["data"]))
    assert seen["data_headers"]["content-length"] == str(len(seen["data"]))
    assert seen["data_headers"]["x-goog-upload-command"] == "upload, finalize"
    assert seen["create"] == {"batch": {"displayName": shard.tag, "inputConfig": {"fileName": "files/in1"}}}


def test_status_strings_and_omitted_zeros() -> None:
    s = gemini_status(
        {
            **_op("BATCH_STATE_SUCCEEDED", batchStats={"requestCount": "2", "successfulRequestCount": "2"}),
            "done": True,
            "response": {"responsesFile": "files/batch-abc"},
        }
    )
    assert (
        s.state == "completed" and s.counts.total == 2 and s.counts.failed == 0 and s.counts.processing == 0
    )
    assert s.output_location == "files/batch-abc"
    mirrored = gemini_status(_op("JOB_STATE_SUCCEEDED", output={"responsesFile": "files/batch-x"}))
    assert mirrored.output_location == "files/batch-x" and mirrored.state == "completed"
    assert gemini_status(_op("BATCH_STATE_RUNNING")).state == "in_progress"
    assert gemini_status(_op("BATCH_STATE_NEW_THING")).state == "in_progress"
    failed = gemini_status({**_op("BATCH_STATE_FAILED"), "error": {"code": 3, "message": "bad"}})
    assert failed.state == "failed" and failed.failure_message == "bad"


async def test_inline_results_and_resume() -> None:
    op = {
        **_op("BATCH_STATE_SUCCEEDED"),
        "done": True,
        "response": {
            "inlinedResponses": {
                "inlinedResponses": [
                    {
                        "metadata": {"key": "k1"},
                        "response": {"usageMetadata": {"promptTokenCount": 7, "candidatesTokenCount": 3}},
                    },
                    {"metadata": {"key": "k2"}, "error": {"code": 400, "message": "bad"}},
                ]
            }
        },
    }

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=op)

    provider = _provider(handler)
    ref = ProviderBatchRef(provider="gemini", provider_batch_id="batches/abc")
    status = gemini_status(op)
    lines = [x async for x in provider.results(ref, status)]
    assert [(x.custom_id, x.outcome, x.input_tokens) for x in lines] == [
        ("k1", "succeeded", 7),
        ("k2", "failed", 0),
    ]
    assert lines[1].status_code == 400
    assert [x.custom_id async for x in provider.results(ref, status, lines[0].cursor)] == ["k2"]


async def test_file_results() -> None:
    data = (
        b'{"key":"k1","response":{"usageMetadata":{"promptTokenCount":5,"cachedContentTokenCount":2}}}\n'
        b'{"key":"k2","error":{"code":500,"message":"x","status":"INTERNAL"}}\n'
    )

    def handler(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/v1beta/files/batch-abc:download"
        return httpx.Response(200, content=data)

    status = gemini_status({**_op("BATCH_STATE_SUCCEEDED"), "response": {"responsesFile": "files/batch-abc"}})
    lines = [
        x
        async for x in _provider(handler).results(
            ProviderBatchRef(provider="gemini", provider_batch_id="batches/abc"), status
        )
    ]
    assert [(x.custom_id, x.outcome, x.cached_tokens) for x in lines] == [
        ("k1", "succeeded", 2),
        ("k2", "failed", 0),
    ]


async def test_find_submitted_by_display_name() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.params.get("pageToken") == "p2":
            op = _op("BATCH_STATE_RUNNING", model="models/gemini-2.5-flash")
            op["metadata"]["displayName"] = "db_b1_s0_r0"
            return httpx.Response(200, json={"operations": [op]})
        return httpx.Response(200, json={"operations": [_op("BATCH_STATE_RUNNING")], "nextPageToken": "p2"})

    found = await _provider(handler).find_submitted(make_shard())
    assert (
        found is not None
        and found.provider_batch_id == "batches/abc"
        and found.extra == {"model": "gemini-2.5-flash"}
    )

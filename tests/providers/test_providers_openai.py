"""OpenAI client against scripted responses: wire shapes and the traps of docs/providers.md."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from durabatch.providers import errors
from durabatch.providers.base import ProviderBatchRef, ProviderStatus, ResultCursor
from durabatch.providers.jsonl import split_lines
from durabatch.providers.openai import OpenAIProvider
from durabatch.providers.openai_wire import openai_decode, openai_result, openai_status
from tests.providers.conftest import SECRET, make_shard, mock_client


def _provider(handler, **kwargs) -> OpenAIProvider:
    return OpenAIProvider(
        mock_client(handler), "http://p.test/v1", lambda: SECRET, retry_delay=0.001, **kwargs
    )


def _batch(**fields) -> dict[str, Any]:
    base = {
        "id": "batch_1",
        "object": "batch",
        "endpoint": "/v1/chat/completions",
        "input_file_id": "file-in",
        "status": "validating",
        "created_at": 1000,
        "request_counts": {"total": 0, "completed": 0, "failed": 0},
        "metadata": None,
    }
    return {**base, **fields}


async def test_submit_streams_multipart_and_tags_metadata() -> None:
    seen: dict[str, Any] = {}

    async def handler(request: httpx.Request) -> httpx.Response:
        assert request.headers["authorization"] == f"Bearer {SECRET}"
        if request.url.path == "/v1/files":
            body = await request.aread()
            seen["upload_headers"] = request.headers
            seen["upload"] = body
            return httpx.Response(200, json={"id": "file-in", "object": "file"})
        assert request.url.path == "/v1/batches"
        seen["create"] = json.loads(await request.aread())
        return httpx.Response(200, json=_batch(metadata=seen["create"]["metadata"]))

    ref = await _provider(handler).submit(make_shard())
    assert ref == ProviderBatchRef(provider="openai", provider_batch_id="batch_1", input_file_id="file-in")
    assert seen["upload_headers"]["transfer-encoding"] == "chunked"
    boundary = seen["upload_headers"]["content-type"].split("boundary=")[1]
    parts = seen["upload"].split(f"--{boundary}".encode())
    assert b'name="purpose"\r\n\r\nbatch\r\n' in parts[1]
    jsonl = parts[2].split(b"\r\n\r\n", 1)[1].removesuffix(b"\r\n")
    lines = [json.loads(x) for x in split_lines(jsonl)]
    assert [x["custom_id"] for x in lines] == ["r0", "r1", "r2"]
    assert lines[0]["method"] == "POST" and lines[0]["url"] == "/v1/chat/completions"
    assert seen["create"]["completion_window"] == "24h"
    assert seen["create"]["metadata"]["durabatch_tag"] == "db_b1_s0_r0"
    assert seen["create"]["metadata"]["durabatch_batch_id"] == "b1"


async def test_azure_uses_api_key_header() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        assert request.headers["api-key"] == SECRET and "authorization" not in request.headers
        return httpx.Response(200, json=_batch(status="in_progress"))

    provider = OpenAIProvider(mock_client(handler), "https://x.openai.azure.com/openai/v1", lambda: SECRET)
    assert (
        await provider.status(ProviderBatchRef(provider="openai", provider_batch_id="batch_1"))
    ).state == ("in_progress")


async def test_azure_dated_api_keeps_api_version_and_waits_for_the_file() -> None:
    calls: list[tuple[str, str, str | None]] = []
    file_checks = iter(["running", "processed"])

    async def handler(request: httpx.Request) -> httpx.Response:
        calls.append((request.method, request.url.path, request.url.params.get("api-version")))
        assert request.headers["api-key"] == SECRET
        if request.method == "POST" and request.url.path == "/openai/files":
            await request.aread()
            return httpx.Response(200, json={"id": "file-in", "object": "file", "status": "pending"})
        if request.url.path == "/openai/files/file-in":
            return httpx.Response(200, json={"id": "file-in", "status": next(file_checks)})
        assert request.url.path == "/openai/batches"
        return httpx.Response(200, json=_batch())

    provider = OpenAIProvider(
        mock_client(handler), "https://x.openai.azure.com/openai?api-version=2024-10-21", lambda: SECRET
    )
    ref = await provider.submit(make_shard())
    assert ref.provider_batch_id == "batch_1"
    assert [(m, p) for m, p, _ in calls] == [
        ("POST", "/openai/files"),
        ("GET", "/openai/files/file-in"),
        ("GET", "/openai/files/file-in"),
        ("POST", "/openai/batches"),
    ]
    assert {v for _, _, v in calls} == {"2024-10-21"}, "every call keeps the dated api-version"


async def test_azure_file_in_error_is_bad_input() -> None:
    async def handler(request: httpx.Request) -> httpx.Response:
        await request.aread()
        return httpx.Response(
            200, json={"id": "file-in", "status": "error", "status_details": "line 2: invalid JSON"}
        )

    provider = OpenAIProvider(mock_client(handler), "https://x.openai.azure.com/openai/v1", lambda: SECRET)
    with pytest.raises(errors.BadRequest, match="line 2: invalid JSON"):
        await provider.submit(make_shard())


async def test_find_submitted_pages_and_stops_at_window() -> None:
    pages = {
        None: [_batch(id="batch_9", created_at=5000), _batch(id="batch_8", created_at=4900)],
        "batch_8": [_batch(id="batch_7", created_at=4800, metadata={"durabatch_tag": "db_b1_s0_r0"})],
    }
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        after = request.url.params.get("after")
        calls.append(after)
        return httpx.Response(200, json={"object": "list", "data": pages[after], "has_more": True})

    found = await _provider(handler).find_submitted(make_shard(attempt_started_at=4800))
    assert found is not None and found.provider_batch_id == "batch_7"
    assert calls == [None, "batch_8"]

    calls.clear()
    # first attempt long after these batches: stop after the first page, nothing found
    assert await _provider(handler).find_submitted(make_shard(tag="other", attempt_started_at=9000)) is None
    assert calls == [None]


def test_status_table() -> None:
    s = openai_status(
        _batch(
            status="completed",
            output_file_id=None,
            error_file_id="file-err",
            request_counts={"total": 9, "completed": 0, "failed": 9},
        )
    )
    assert s.state == "completed" and s.output_location is None and s.error_location == "file-err"
    assert s.counts.failed == 9 and s.counts.processing == 0

    quota = openai_status(
        _batch(
            status="failed",
            errors={
                "object": "list",
                "data": [
                    {"code": "token_limit_exceeded", "message": "Enqueued token limit reached", "line": None}
                ],
            },
        )
    )
    assert quota.state == "failed" and quota.retry_later and quota.failure_code == "token_limit_exceeded"

    bad = openai_status(
        _batch(status="failed", errors={"data": [{"code": "invalid_json_line", "message": "x", "line": 3}]})
    )
    assert not bad.retry_later and bad.failure_message == "line 3: x"
    assert openai_status(_batch(status="cancelling")).state == "in_progress"
    assert openai_status(_batch(status="brand_new")).state == "in_progress"


def test_together_job_wrapper_and_uppercase_statuses() -> None:
    # OpenAI-compatible services that differ only in spelling (docs/providers.md, OpenAI-compatible services)
    done = openai_status({"job": _batch(status="COMPLETED", output_file_id="file-out")})
    assert done.state == "completed" and done.output_location == "file-out"
    assert done.provider_status == "COMPLETED"
    assert openai_status(_batch(status="CANCELING")).state == "in_progress"
    assert openai_status(_batch(status="CANCELLED")).state == "cancelled"
    assert openai_status(_batch(status="IN_PROGRESS")).state == "in_progress"


def test_result_lines() -> None:
    ok = openai_result(
        {
            "custom_id": "a",
            "response": {
                "status_code": 200,
                "body": {
                    "usage": {
                        "prompt_tokens": 10,
                        "completion_tokens": 3,
                        "prompt_tokens_details": {"cached_tokens": 4},
                    }
                },
            },
            "error": None,
        }
    )
    assert ok and (ok.outcome, ok.input_tokens, ok.cached_tokens, ok.output_tokens) == ("succeeded", 10, 4, 3)
    resp = openai_result(
        {
            "custom_id": "r",
            "response": {
                "status_code": 200,
                "body": {
                    "usage": {
                        "input_tokens": 5,
                        "output_tokens": 6,
                        "input_tokens_details": {"cached_tokens": 1},
                    }
                },
            },
            "error": None,
        }
    )
    assert resp and (resp.input_tokens, resp.cached_tokens, resp.output_tokens) == (5, 1, 6)
    failed = openai_result(
        {
            "custom_id": "b",
            "response": {
                "status_code": 400,
                "body": {"error": {"message": "max_tokens is too large", "type": "invalid_request_error"}},
            },
            "error": None,
        }
    )
    assert failed and failed.outcome == "failed" and failed.status_code == 400
    assert failed.error == {"message": "max_tokens is too large", "type": "invalid_request_error"}
    expired = openai_result(
        {"custom_id": "c", "response": None, "error": {"code": "batch_expired", "message": "x"}}
    )
    assert expired and expired.outcome == "expired"
    cancelled = openai_result({"custom_id": "d", "response": None, "error": {"code": "batch_cancelled"}})
    assert cancelled and cancelled.outcome == "cancelled"


async def test_results_read_both_parts_and_resume() -> None:
    files = {
        "file-out": b"".join(
            json.dumps(
                {"custom_id": f"ok{i}", "response": {"status_code": 200, "body": {}}, "error": None}
            ).encode()
            + b"\n"
            for i in range(3)
        ),
        "file-err": json.dumps(
            {"custom_id": "bad", "response": None, "error": {"code": "batch_expired"}}
        ).encode(),
    }

    def handler(request: httpx.Request) -> httpx.Response:
        file_id = request.url.path.split("/")[3]
        return httpx.Response(200, content=files[file_id])

    provider = _provider(handler)
    status = ProviderStatus(
        state="expired", provider_status="expired", output_location="file-out", error_location="file-err"
    )
    ref = ProviderBatchRef(provider="openai", provider_batch_id="batch_1")
    lines = [x async for x in provider.results(ref, status)]
    assert [(x.custom_id, x.outcome) for x in lines] == [
        ("ok0", "succeeded"),
        ("ok1", "succeeded"),
        ("ok2", "succeeded"),
        ("bad", "expired"),
    ]
    assert lines[1].cursor == ResultCursor(part=0, offset=lines[1].cursor.offset, lines=2)
    assert lines[3].cursor.part == 1
    resumed = [x async for x in provider.results(ref, status, lines[1].cursor)]
    assert [x.custom_id for x in resumed] == ["ok2", "bad"]
    resumed = [x async for x in provider.results(ref, status, lines[2].cursor)]
    assert [x.custom_id for x in resumed] == ["bad"]
    only_errors = status.model_copy(update={"output_location": None})
    assert [x.custom_id async for x in provider.results(ref, only_errors)] == ["bad"]


async def test_cancel_of_ended_batch_is_not_an_error() -> None:
    sent: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(
            409, json={"error": {"message": "Cannot cancel a batch with status 'completed'."}}
        )

    await _provider(handler).cancel(ProviderBatchRef(provider="openai", provider_batch_id="batch_1"))
    # one cancel, to the batch's own route, with the key: the 409 (already ended) is final, not retried
    assert [(r.method, r.url.path) for r in sent] == [("POST", "/v1/batches/batch_1/cancel")]
    assert sent[0].headers["authorization"] == f"Bearer {SECRET}"


async def test_missing_key_names_variable() -> None:
    def no_key() -> str:
        raise errors.AuthenticationFailed("OPENAI_API_KEY is not set", provider="openai")

    provider = OpenAIProvider(mock_client(lambda r: httpx.Response(200)), "http://p.test/v1", no_key)
    with pytest.raises(errors.AuthenticationFailed, match="OPENAI_API_KEY is not set"):
        await provider.status(ProviderBatchRef(provider="openai", provider_batch_id="b"))


async def test_realtime() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/v1/chat/completions"
        return httpx.Response(200, json={"id": "chatcmpl-1"})

    assert await _provider(handler).realtime("/v1/chat/completions", {"model": "m"}) == {"id": "chatcmpl-1"}


@pytest.mark.parametrize(
    "line",
    [
        b'{"custom_id":"a","response":{"status_code":200,"body":{"usage":{"prompt_tokens":10,'
        b'"completion_tokens":3,"prompt_tokens_details":{"cached_tokens":4}}}},"error":null}',
        b'{"custom_id":"a","custom_id":"b","response":{"status_code":200,"body":{"usage":{"prompt_tokens":1}}}}',
        b'{"custom_id":"a","response":{"status_code":200,"body":{"x":1e400,"usage":{"prompt_tokens":1}}}}',
        b'{"custom_id":"a","response":{"status_code":201,"body":{"usage":{"input_tokens":5,"output_tokens":6,'
        b'"input_tokens_details":{"cached_tokens":1}}}}}',
        b'{"custom_id":"a","response":{"status_code":200,"body":{"usage":{"prompt_tokens":true,"completion_tokens":-3}}}}',
        b'{"custom_id":"a","response":{"status_code":200,"body":{"usage":{"prompt_tokens":1.5,"completion_tokens":"2"}}}}',
        b'{"custom_id":"a","response":{"status_code":200,"body":{"usage":[1]}}}',
        # the typed usage struct: nulls, missing counts, details of every shape, both APIs' names
        b'{"custom_id":"a","response":{"status_code":200,"body":{"usage":{"prompt_tokens":null,"completion_tokens":2}}}}',
        b'{"custom_id":"a","response":{"status_code":200,"body":{"usage":{"completion_tokens":2}}}}',
        b'{"custom_id":"a","response":{"status_code":200,"body":{"usage":{"prompt_tokens":3,'
        b'"completion_tokens":2,"prompt_tokens_details":null}}}}',
        b'{"custom_id":"a","response":{"status_code":200,"body":{"usage":{"prompt_tokens":3,'
        b'"completion_tokens":2,"prompt_tokens_details":{"cached_tokens":null}}}}}',
        b'{"custom_id":"a","response":{"status_code":200,"body":{"usage":{"prompt_tokens":3,'
        b'"completion_tokens":2,"prompt_tokens_details":{"cached_tokens":"1"}}}}}',
        b'{"custom_id":"a","response":{"status_code":200,"body":{"usage":{"prompt_tokens":3,'
        b'"completion_tokens":2,"prompt_tokens_details":[]}}}}',
        b'{"custom_id":"a","response":{"status_code":200,"body":{"usage":{"prompt_tokens":3,"input_tokens":null}}}}',
        b'{"custom_id":"a","response":{"status_code":200,"body":{"usage":{"prompt_tokens":3,"output_tokens":4}}}}',
        b'{"custom_id":"a","response":{"status_code":200,"body":{"usage":{"prompt_tokens":123456789012345678901234,'
        b'"completion_tokens":2}}}}',
        b'{"custom_id":"a","response":{"status_code":200,"body":{"usage":{"prompt_tokens":7.0,"completion_tokens":2}}}}',
        b'{"custom_id":"a","response":{"status_code":200,"body":null}}',
        b'{"custom_id":"a","response":{"status_code":200,"body":"text"}}',
        b'{"custom_id":"a","response":{"status_code":200}}',
        b'{"custom_id":"a","response":{"status_code":400,"body":{"error":{"message":"m"}}},"error":null}',
        b'{"custom_id":"a","response":{"status_code":500,"body":{"detail":"no error object"}}}',
        b'{"custom_id":"a","response":null,"error":{"code":"batch_expired"}}',
        b'{"custom_id":"a","error":"oops","response":{"status_code":200,"body":{}}}',
        b'{"custom_id":"a","response":{"status_code":true,"body":{}}}',
        b'{"custom_id":"a","response":{"status_code":200.0,"body":{}}}',
        b'{"custom_id":"a","response":"x"}',
        b'{"custom_id":5,"response":{"status_code":200}}',
        b"[1, 2]",
    ],
)
def test_the_success_decoder_reads_every_line_as_the_full_decode_does(line: bytes) -> None:
    """`openai_decode` reads a success's custom_id, status and usage only: the result must be the
    one the whole JSON value gives, for lines of every shape."""

    def summary(record: Any) -> Any:
        got = openai_result(record)
        if got is None:
            return None
        return (
            got.custom_id,
            got.outcome,
            got.status_code,
            got.error,
            got.input_tokens,
            got.cached_tokens,
            got.output_tokens,
        )

    assert summary(openai_decode(line)) == summary(json.loads(line))

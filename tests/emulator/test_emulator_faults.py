"""Every fault, seen on the wire with a raw HTTP client."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from durabatch.emulator.server import RunningEmulator
from tests.emulator.helpers import (
    ANTHROPIC_H,
    GEMINI_H,
    OPENAI_H,
    add_fault,
    chat_line,
    openai_batch,
    openai_wait,
    parse_jsonl,
)

TERMINAL = {"completed", "failed", "expired", "cancelled"}


async def _completed_batch(
    http: httpx.AsyncClient, n: int = 5, metadata: dict[str, str] | None = None, prefix: str = "r"
) -> dict[str, Any]:
    b = await openai_batch(http, [chat_line(f"{prefix}{i}", f"text {i}") for i in range(n)], metadata)
    return await openai_wait(http, b["id"], TERMINAL)


async def test_http_error_429_with_retry_after_limited_to_count(http: httpx.AsyncClient) -> None:
    await add_fault(
        http,
        fault="http_error",
        status=429,
        retry_after=2,
        provider="openai",
        operation="batches.list",
        count=2,
    )
    for _ in range(2):
        r = await http.get("/v1/batches", headers=OPENAI_H)
        assert r.status_code == 429 and r.headers["Retry-After"] == "2"
        assert r.json()["error"]["code"] == "rate_limit_exceeded"
        assert r.headers["x-request-id"].startswith("req_")
    assert (await http.get("/v1/batches", headers=OPENAI_H)).status_code == 200
    assert (await http.get("/_emulator/faults")).json()["faults"] == []


@pytest.mark.parametrize("status", [500, 502, 503])
async def test_http_5xx_in_each_providers_shape(http: httpx.AsyncClient, status: int) -> None:
    await add_fault(http, fault="http_error", status=status, count=3)
    o = await http.get("/v1/batches", headers=OPENAI_H)
    a = await http.get("/v1/messages/batches", headers=ANTHROPIC_H)
    g = await http.get("/v1beta/batches", headers=GEMINI_H)
    assert (o.status_code, a.status_code, g.status_code) == (status, status, status)
    assert set(o.json()["error"]) == {"message", "type", "param", "code"}
    assert a.json()["type"] == "error" and a.json()["request_id"] == a.headers["request-id"]
    assert g.json()["error"]["code"] == status and g.json()["error"]["status"] in {"INTERNAL", "UNAVAILABLE"}


async def test_gemini_429_carries_retry_info(http: httpx.AsyncClient) -> None:
    await add_fault(http, fault="http_error", status=429, provider="gemini", count=1)
    g = await http.get("/v1beta/batches", headers=GEMINI_H)
    assert g.status_code == 429 and g.json()["error"]["status"] == "RESOURCE_EXHAUSTED"
    assert g.json()["error"]["details"][0]["retryDelay"] == "1s"


async def test_anthropic_529_overloaded(http: httpx.AsyncClient) -> None:
    await add_fault(http, fault="http_error", status=529, provider="anthropic", count=1)
    a = await http.get("/v1/messages/batches", headers=ANTHROPIC_H)
    assert a.status_code == 529 and a.json()["error"]["type"] == "overloaded_error"


async def test_fault_scoped_to_provider_and_operation(http: httpx.AsyncClient) -> None:
    await add_fault(http, fault="http_error", status=503, provider="anthropic", operation="batches.retrieve")
    assert (await http.get("/v1/batches", headers=OPENAI_H)).status_code == 200
    assert (await http.get("/v1/messages/batches", headers=ANTHROPIC_H)).status_code == 200
    r = await http.get("/v1/messages/batches/msgbatch_x", headers=ANTHROPIC_H)
    assert r.status_code == 503
    await http.delete("/_emulator/faults")
    assert (await http.get("/v1/messages/batches/msgbatch_x", headers=ANTHROPIC_H)).status_code == 404


async def test_slow_response(http: httpx.AsyncClient) -> None:
    await add_fault(http, fault="slow", delay_seconds=0.3, operation="batches.list", count=1)
    t = time.monotonic()
    assert (await http.get("/v1/batches", headers=OPENAI_H)).status_code == 200
    assert time.monotonic() - t >= 0.3


async def test_dropped_connection(http: httpx.AsyncClient) -> None:
    await add_fault(http, fault="drop_connection", provider="openai", operation="batches.list", count=1)
    with pytest.raises(httpx.RemoteProtocolError):
        await http.get("/v1/batches", headers=OPENAI_H)
    assert (await http.get("/v1/batches", headers=OPENAI_H)).status_code == 200


async def test_create_response_lost_but_batch_created(http: httpx.AsyncClient) -> None:
    up = await http.post(
        "/v1/files",
        headers=OPENAI_H,
        files={
            "file": (
                "a.jsonl",
                b'{"custom_id":"a","method":"POST","url":"/v1/chat/completions","body":{"model":"m","messages":[]}}\n',
            )
        },
        data={"purpose": "batch"},
    )
    await add_fault(http, fault="lose_create_response", provider="openai", count=1)
    body = {
        "input_file_id": up.json()["id"],
        "endpoint": "/v1/chat/completions",
        "completion_window": "24h",
        "metadata": {"client_ref": "abc"},
    }
    with pytest.raises(httpx.RemoteProtocolError):
        await http.post("/v1/batches", headers=OPENAI_H, json=body)
    listed = (await http.get("/v1/batches", headers=OPENAI_H)).json()["data"]
    assert [b["metadata"] for b in listed] == [{"client_ref": "abc"}]
    stats = (await http.get("/_emulator/stats")).json()
    assert stats["batches_created"]["openai"] == 1 and stats["faults_fired"]["lose_create_response"] == 1


async def test_lost_create_response_anthropic_and_gemini(http: httpx.AsyncClient) -> None:
    await add_fault(http, fault="lose_create_response", count=2)
    with pytest.raises(httpx.RemoteProtocolError):
        await http.post(
            "/v1/messages/batches",
            headers=ANTHROPIC_H,
            json={
                "requests": [{"custom_id": "a", "params": {"model": "c", "max_tokens": 5, "messages": []}}]
            },
        )
    with pytest.raises(httpx.RemoteProtocolError):
        await http.post(
            "/v1beta/models/gemini-2.5-flash:batchGenerateContent",
            headers=GEMINI_H,
            json={"batch": {"displayName": "d", "inputConfig": {"requests": {"requests": []}}}},
        )
    stats = (await http.get("/_emulator/stats")).json()
    assert stats["batches_created"] == {"anthropic": 1, "gemini": 1}


async def test_truncated_download_then_range_resume(http: httpx.AsyncClient) -> None:
    done = await _completed_batch(http, n=50)
    url = f"/v1/files/{done['output_file_id']}/content"
    full = (await http.get(url, headers=OPENAI_H)).content
    await add_fault(http, fault="truncate_download", after_bytes=1000, count=1)
    got = bytearray()
    with pytest.raises(httpx.RemoteProtocolError):
        async with http.stream("GET", url, headers=OPENAI_H) as r:
            assert int(r.headers["Content-Length"]) == len(full)
            async for chunk in r.aiter_raw():
                got.extend(chunk)
    assert bytes(got) == full[:1000]
    r = await http.get(url, headers={**OPENAI_H, "Range": f"bytes={len(got)}-"})
    assert r.status_code == 206 and r.headers["Content-Range"] == f"bytes 1000-{len(full) - 1}/{len(full)}"
    assert bytes(got) + r.content == full


async def test_truncated_anthropic_results_and_gemini_download(
    http: httpx.AsyncClient, emu: RunningEmulator
) -> None:
    r = await http.post(
        "/v1/messages/batches",
        headers=ANTHROPIC_H,
        json={
            "requests": [
                {
                    "custom_id": f"a{i}",
                    "params": {"model": "c", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]},
                }
                for i in range(20)
            ]
        },
    )
    bid = r.json()["id"]
    await http.post(f"/_emulator/batches/{bid}/advance", json={"to": "ended"})
    await add_fault(http, fault="truncate_download", provider="anthropic", count=1)
    with pytest.raises(httpx.RemoteProtocolError):
        await http.get(f"/v1/messages/batches/{bid}/results", headers=ANTHROPIC_H)
    ok = await http.get(f"/v1/messages/batches/{bid}/results", headers=ANTHROPIC_H)
    assert ok.headers["content-type"] == "application/x-jsonl" and len(parse_jsonl(ok.content)) == 20


async def test_malformed_and_duplicate_lines_by_marker(http: httpx.AsyncClient) -> None:
    b = await openai_batch(http, [chat_line("ok"), chat_line("x__malformed"), chat_line("y__duplicate")])
    done = await openai_wait(http, b["id"], TERMINAL)
    raw = (await http.get(f"/v1/files/{done['output_file_id']}/content", headers=OPENAI_H)).content
    lines = raw.split(b"\n")[:-1]
    assert len(lines) == 4
    # output order is not input order: find each line by what it carries
    unparsable = [line for line in lines if not _parses(line)]
    assert len(unparsable) == 1 and b"x__malformed" in unparsable[0]
    duplicated = [line for line in lines if b'"y__duplicate"' in line]
    assert len(duplicated) == 2 and duplicated[0] == duplicated[1]


def _parses(line: bytes) -> bool:
    try:
        parse_jsonl(line)
    except ValueError:
        return False
    return True


async def test_malformed_and_duplicate_lines_by_admin_fault(http: httpx.AsyncClient) -> None:
    await add_fault(http, fault="malformed_output_lines", provider="openai", requests=2, count=1)
    await add_fault(http, fault="duplicate_output_lines", provider="openai", requests=1, count=1)
    done = await _completed_batch(http, n=4)
    lines = (await http.get(f"/v1/files/{done['output_file_id']}/content", headers=OPENAI_H)).content.split(
        b"\n"
    )
    lines = [line for line in lines if line]
    assert len(lines) == 5  # request 0 twice (malformed both times), request 1 malformed, 2 and 3
    twice = [line for line in lines if lines.count(line) == 2]
    assert len(twice) == 2 and twice[0].count(b"{") > twice[0].count(b"}")
    assert sum(not _parses(line) for line in lines) == 3


async def test_missing_from_both_files(http: httpx.AsyncClient) -> None:
    b = await openai_batch(
        http, [chat_line("a"), chat_line("gone__missing"), chat_line("bad__fail_400__missing")]
    )
    done = await openai_wait(http, b["id"], TERMINAL)
    assert done["request_counts"] == {"total": 3, "completed": 2, "failed": 1}
    out = parse_jsonl(
        (await http.get(f"/v1/files/{done['output_file_id']}/content", headers=OPENAI_H)).content
    )
    assert [x["custom_id"] for x in out] == ["a"]
    err = (await http.get(f"/v1/files/{done['error_file_id']}/content", headers=OPENAI_H)).content
    assert err == b""


async def test_missing_results_admin_fault_for_anthropic(http: httpx.AsyncClient) -> None:
    await add_fault(http, fault="missing_results", provider="anthropic", requests=2, count=1)
    r = await http.post(
        "/v1/messages/batches",
        headers=ANTHROPIC_H,
        json={
            "requests": [
                {"custom_id": f"a{i}", "params": {"model": "c", "max_tokens": 5, "messages": []}}
                for i in range(5)
            ]
        },
    )
    bid = r.json()["id"]
    await http.post(f"/_emulator/batches/{bid}/advance", json={"to": "ended"})
    got = parse_jsonl((await http.get(f"/v1/messages/batches/{bid}/results", headers=ANTHROPIC_H)).content)
    assert sorted(x["custom_id"] for x in got) == ["a2", "a3", "a4"]


async def test_stuck_in_finalizing_until_expiry(http: httpx.AsyncClient) -> None:
    b = await openai_batch(http, [chat_line("a"), chat_line("b")], metadata={"faults": "__stuck_finalizing"})
    fin = await openai_wait(http, b["id"], {"finalizing"})
    assert fin["request_counts"] == {"total": 2, "completed": 2, "failed": 0}
    await http.post("/_emulator/clock/advance", json={"seconds": 3600})
    assert (await http.get(f"/v1/batches/{b['id']}", headers=OPENAI_H)).json()["status"] == "finalizing"
    await http.post("/_emulator/clock/advance", json={"seconds": 86400})
    done = (await http.get(f"/v1/batches/{b['id']}", headers=OPENAI_H)).json()
    assert done["status"] == "expired" and done["output_file_id"] and done["error_file_id"] is None


async def test_expire_after_fault_gives_partial_results(
    http: httpx.AsyncClient, emu: RunningEmulator
) -> None:
    emu.state.config.ms_per_request = 10.0
    await add_fault(http, fault="expire_after", seconds=0.3, provider="openai", count=1)
    done = await _completed_batch(http, n=100)
    assert done["status"] == "expired" and 0 < done["request_counts"]["completed"] < 100


async def test_request_errors_fault(http: httpx.AsyncClient) -> None:
    await add_fault(http, fault="request_errors", requests=2, request_status=429, count=1)
    done = await _completed_batch(http, n=4)
    assert done["request_counts"] == {"total": 4, "completed": 2, "failed": 2}
    err = parse_jsonl(
        (await http.get(f"/v1/files/{done['error_file_id']}/content", headers=OPENAI_H)).content
    )
    assert [e["response"]["status_code"] for e in err] == [429, 429]
    assert err[0]["response"]["body"]["error"]["code"] == "rate_limit_exceeded"


async def test_all_fail_completes_with_null_output_file(http: httpx.AsyncClient) -> None:
    await add_fault(http, fault="all_fail", provider="openai", count=1)
    done = await _completed_batch(http, n=3)
    assert done["status"] == "completed"
    assert done["output_file_id"] is None and done["error_file_id"] is not None
    assert done["request_counts"] == {"total": 3, "completed": 0, "failed": 3}


async def test_no_failures_gives_null_error_file(http: httpx.AsyncClient) -> None:
    done = await _completed_batch(http, n=2)
    assert done["output_file_id"] is not None and done["error_file_id"] is None


async def test_token_limit_exceeded_after_200(http: httpx.AsyncClient) -> None:
    await add_fault(http, fault="token_limit_exceeded", provider="openai", count=1)
    b = await openai_batch(http, [chat_line("a")])
    assert b["status"] == "validating"
    done = await openai_wait(http, b["id"], TERMINAL)
    assert done["status"] == "failed"
    assert done["errors"]["data"][0]["code"] == "token_limit_exceeded"
    assert "Enqueued token limit reached" in done["errors"]["data"][0]["message"]


async def test_the_enqueued_token_limit_counts_unfinished_batches_per_model(
    http: httpx.AsyncClient, emu: RunningEmulator
) -> None:
    # each batch: one request of 8 words, 12 prompt tokens by the emulator's count
    emu.state.config.openai_enqueued_token_limit = 30
    emu.state.config.validating_seconds = 60
    eight = "one two three four five six seven eight"

    async def create(cid: str, model: str = "gpt-4o-mini") -> dict[str, Any]:
        return await openai_batch(http, [chat_line(cid, eight, model=model)])

    async def status(b: dict[str, Any]) -> dict[str, Any]:
        await http.post(f"/_emulator/batches/{b['id']}/advance", json={"seconds": 61})
        return dict((await http.get(f"/v1/batches/{b['id']}", headers=OPENAI_H)).json())

    first, second = await create("a"), await create("b")  # 24 of 30
    third = await create("c")  # 36: refused, but the create itself is accepted, as OpenAI's is
    assert third["status"] == "validating"
    other_model = await create("d", model="gpt-4o")  # a limit per model
    refused = await status(third)
    assert refused["status"] == "failed"
    (error,) = refused["errors"]["data"]
    assert error["code"] == "token_limit_exceeded" and "Limit: 30 enqueued tokens" in error["message"]
    assert (await status(other_model))["status"] != "failed"
    # the refused batch held no room, and an ended one gives its room back
    await http.post(f"/_emulator/batches/{first['id']}/advance", json={"to": "completed"})
    fourth = await create("e")
    fifth = await create("f")  # 12 + 12 + 12 again
    assert [(await status(b))["status"] != "failed" for b in (second, fourth)] == [True, True]
    assert (await status(fifth))["status"] == "failed"
    stats = (await http.get("/_emulator/stats")).json()
    assert stats["enqueued_tokens_high_water"] == {"gpt-4o-mini": 24, "gpt-4o": 12}
    assert stats["token_limit_refusals"] == {"gpt-4o-mini": 2}


async def test_gemini_batch_fault_by_display_name(http: httpx.AsyncClient) -> None:
    r = await http.post(
        "/v1beta/models/gemini-2.5-flash:batchGenerateContent",
        headers=GEMINI_H,
        json={
            "batch": {
                "displayName": "job__all_fail",
                "inputConfig": {
                    "requests": {
                        "requests": [
                            {"request": {"contents": [{"parts": [{"text": "hi"}]}]}, "metadata": {"key": "a"}}
                        ]
                    }
                },
            }
        },
    )
    name = r.json()["name"]
    await http.post(f"/_emulator/batches/{name}/advance", json={"to": "BATCH_STATE_SUCCEEDED"})
    op = (await http.get(f"/v1beta/{name}", headers=GEMINI_H)).json()
    assert op["done"] is True
    assert op["metadata"]["batchStats"] == {"requestCount": "1", "failedRequestCount": "1"}
    inline = op["response"]["inlinedResponses"]["inlinedResponses"]
    assert inline[0]["metadata"] == {"key": "a"} and inline[0]["error"]["status"] == "INTERNAL"
    assert op["metadata"]["output"] == {k: v for k, v in op["response"].items() if k != "@type"}


async def test_crlf_line_endings(http: httpx.AsyncClient) -> None:
    await add_fault(http, fault="crlf_lines", provider="anthropic", count=1)
    r = await http.post(
        "/v1/messages/batches",
        headers=ANTHROPIC_H,
        json={
            "requests": [
                {"custom_id": f"a{i}", "params": {"model": "c", "max_tokens": 5, "messages": []}}
                for i in range(3)
            ]
        },
    )
    bid = r.json()["id"]
    await http.post(f"/_emulator/batches/{bid}/advance", json={"to": "ended"})
    raw = (await http.get(f"/v1/messages/batches/{bid}/results", headers=ANTHROPIC_H)).content
    assert raw.count(b"\r\n") == 3 and raw.endswith(b"\r\n")


async def test_retry_headers_on_http_error(http: httpx.AsyncClient) -> None:
    await add_fault(http, fault="http_error", status=503, retry_after_ms=250, should_retry=False, count=1)
    r = await http.get("/v1/batches", headers=OPENAI_H)
    assert r.status_code == 503
    assert r.headers["retry-after-ms"] == "250" and r.headers["x-should-retry"] == "false"

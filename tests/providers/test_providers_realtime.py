"""RealtimeClient and its RateLimiter: against scripted answers (exact bytes, secrets) and against
the emulator over HTTP (retries, refusals, the provider's error classes)."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from durabatch.emulator import EmulatorConfig, run_emulator
from durabatch.emulator.server import RunningEmulator
from durabatch.providers import errors
from durabatch.providers.anthropic import AnthropicProvider
from durabatch.providers.openai import OpenAIProvider
from durabatch.providers.ratelimit import CallLimits, RateLimiter, parse_reset
from durabatch.providers.realtime import RealtimeClient
from tests.providers.conftest import SECRET, mock_client

KEY = "test-key"
CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("1s", 1.0), ("6m0s", 360.0), ("250ms", 0.25), ("1m30.5s", 90.5), ("2h", 7200.0)],
)
def test_parse_reset_reads_openai_durations(value: str, seconds: float) -> None:
    assert parse_reset(value) == pytest.approx(seconds)


def test_parse_reset_reads_anthropic_instants_and_refuses_garbage() -> None:
    at = datetime.now(UTC) + timedelta(seconds=30)
    got = parse_reset(at.strftime("%Y-%m-%dT%H:%M:%SZ"))
    assert got is not None and 28 <= got <= 30.5
    assert parse_reset("soon") is None and parse_reset("") is None and parse_reset("1s2x") is None


def test_limits_are_checked() -> None:
    with pytest.raises(ValueError, match="concurrency"):
        CallLimits(concurrency=0)
    with pytest.raises(ValueError, match="rpm"):
        CallLimits(rpm=0)


async def test_rpm_spaces_calls_after_a_second_of_burst() -> None:
    limiter = RateLimiter(rpm=6000)  # 100 a second, a burst of 100
    started = time.monotonic()
    for _ in range(150):
        await limiter.acquire()
    assert time.monotonic() - started >= 0.45


async def test_tpm_lets_an_oversized_call_through_a_full_bucket() -> None:
    limiter = RateLimiter(tpm=6000)  # 100 tokens a second, a bucket of 100
    started = time.monotonic()
    await limiter.acquire(300)  # larger than the bucket: goes at once, leaving 200 of debt
    assert time.monotonic() - started < 0.1
    await limiter.acquire(5)  # waits until the debt is paid and 5 are back: 2.05 s
    assert 2.0 <= time.monotonic() - started < 3.0


async def test_pause_and_observed_headers_hold_calls() -> None:
    limiter = RateLimiter()
    limiter.pause(0.3)
    limiter.pause(0.1)  # a shorter pause never shortens the first
    started = time.monotonic()
    await limiter.acquire()
    assert time.monotonic() - started >= 0.29
    limiter.observe({"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "200ms"})
    assert limiter.paused_until - time.monotonic() == pytest.approx(0.2, abs=0.05)
    limiter.observe({"anthropic-ratelimit-tokens-remaining": "7", "anthropic-ratelimit-tokens-reset": "x"})
    assert limiter.paused_until - time.monotonic() < 0.25


async def test_the_answer_is_spliced_into_the_batch_line_as_received() -> None:
    # legal JSON no float or jsonb holds: the stored line must keep it byte for byte
    answer = (
        '{"id":"chatcmpl-1","object":"chat.completion","x":"a\\u0000b\\ud800","huge":1e400,'
        '"choices":[],"usage":{"prompt_tokens":7,"completion_tokens":2,"total_tokens":9,'
        '"prompt_tokens_details":{"cached_tokens":3}}}'
    )

    async def handler(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/v1/chat/completions"
        assert request.headers["authorization"] == f"Bearer {SECRET}"
        return httpx.Response(200, text=answer, headers={"x-request-id": "req_abc"})

    provider = OpenAIProvider(mock_client(handler), "http://p.test/v1", lambda: SECRET)
    line = await RealtimeClient(provider, "/v1/chat/completions", CallLimits()).call("c1", CHAT)
    assert line.raw == (
        '{"id":"batch_req_c1","custom_id":"c1","response":{"status_code":200,"request_id":"req_abc",'
        f'"body":{answer}}},"error":null}}'
    )
    assert (line.outcome, line.status_code) == ("succeeded", 200)
    assert (line.input_tokens, line.cached_tokens, line.output_tokens) == (7, 3, 2)


async def test_an_echoed_secret_never_reaches_the_error() -> None:
    async def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(401, json={"error": {"message": f"bad key {SECRET}"}})

    provider = AnthropicProvider(mock_client(handler), "http://p.test", lambda: SECRET)
    client = RealtimeClient(provider, "/v1/messages", CallLimits())
    with pytest.raises(errors.AuthenticationFailed) as exc:
        await client.call("c1", {"model": "claude-haiku-4-5", "max_tokens": 5, "messages": []})
    assert SECRET not in str(exc.value)


@pytest.fixture
async def emu() -> AsyncIterator[RunningEmulator]:
    async with run_emulator(EmulatorConfig(api_keys=[KEY])) as e:
        yield e


def _client(emu: RunningEmulator, http: httpx.AsyncClient, key: str = KEY) -> RealtimeClient:
    provider = OpenAIProvider(http, emu.url + "/v1", lambda: key)
    return RealtimeClient(provider, "/v1/chat/completions", CallLimits(), retry_delay=0.01)


async def _calls(http: httpx.AsyncClient, emu: RunningEmulator) -> int:
    stats = (await http.get(emu.url + "/_emulator/stats")).json()
    return int(stats["requests"].get("openai:chat.completions", 0))


async def test_5xx_is_retried_a_bounded_number_of_times(emu: RunningEmulator) -> None:
    async with httpx.AsyncClient() as http:
        fault = {"fault": "http_error", "status": 503, "operation": "chat.completions", "count": 3}
        assert (await http.post(emu.url + "/_emulator/faults", json=fault)).status_code == 201
        line = await _client(emu, http).call("c1", CHAT)
        assert line.outcome == "succeeded" and await _calls(http, emu) == 4

        fault["count"] = 10
        await http.post(emu.url + "/_emulator/faults", json=fault)
        with pytest.raises(errors.ProviderUnavailable):
            await _client(emu, http).call("c2", CHAT)
        assert await _calls(http, emu) == 4 + 5


async def test_refusals_are_the_requests_outcome_and_auth_errors_raise(emu: RunningEmulator) -> None:
    async with httpx.AsyncClient() as http:
        line = await _client(emu, http).call("c1", {**CHAT, "model": "no-such-model"})
        assert (line.outcome, line.status_code) == ("failed", 404)
        assert line.error is not None and line.error["code"] == "model_not_found"
        assert line.raw is not None and json.loads(line.raw)["response"]["status_code"] == 404
        with pytest.raises(errors.AuthenticationFailed):
            await _client(emu, http, key="wrong-key-12345").call("c2", CHAT)

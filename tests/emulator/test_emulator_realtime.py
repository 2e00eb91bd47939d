"""The emulator's real-time endpoints: the official SDKs and raw HTTP against a running emulator.

A request answered in real time gets the body its batch result has; past `realtime_rpm` /
`realtime_tpm` the providers' 429s come with their rate-limit headers; `__flaky` fails a request's
first run only; unknown models and bad bodies get the providers' error shapes.
"""

from __future__ import annotations

import signal
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anthropic
import httpx
import openai
import pytest
from google import genai
from google.genai import errors as genai_errors
from google.genai import types

from durabatch.emulator import run_emulator
from durabatch.emulator.server import RunningEmulator
from tests.cli.conftest import CLI, clean_env
from tests.conftest import free_port
from tests.emulator.conftest import fast_config
from tests.emulator.helpers import (
    ANTHROPIC_H,
    GEMINI_H,
    KEY,
    OPENAI_H,
    chat_line,
    openai_batch,
    openai_wait,
    parse_jsonl,
)
from tests.helpers import eventually

CHAT: dict[str, Any] = {
    "model": "gpt-4o-mini",
    "messages": [{"role": "user", "content": "what is two and two"}],
}
RESPONSES: dict[str, Any] = {
    "model": "gpt-4.1-mini",
    "input": "name three colours",
    "instructions": "be brief",
}
EMBED: dict[str, Any] = {"model": "text-embedding-3-small", "input": ["one text", "another text"]}
CLAUDE: dict[str, Any] = {
    "model": "claude-sonnet-4-5",
    "max_tokens": 64,
    "messages": [{"role": "user", "content": "hi claude"}],
}
GEMINI: dict[str, Any] = {"contents": [{"role": "user", "parts": [{"text": "hi gemini"}]}]}


@pytest.fixture
async def limited() -> AsyncIterator[RunningEmulator]:
    async with run_emulator(fast_config(realtime_rpm=2)) as e:
        yield e


def _openai(emu: RunningEmulator) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(api_key=KEY, base_url=emu.url + "/v1", max_retries=0)


def _anthropic(emu: RunningEmulator) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(api_key=KEY, base_url=emu.url, max_retries=0)


def _gemini(emu: RunningEmulator) -> genai.Client:
    return genai.Client(
        api_key=KEY, http_options=types.HttpOptions(base_url=emu.url + "/", api_version="v1beta")
    )


async def _openai_batch_body(http: httpx.AsyncClient, endpoint: str, body: dict[str, Any]) -> Any:
    line = {**chat_line("r1"), "url": endpoint, "body": body}
    batch = await openai_batch(http, [line])
    if endpoint != "/v1/chat/completions":
        # the helper makes chat batches; this one names the endpoint of its line
        r = await http.post(
            "/v1/batches",
            headers=OPENAI_H,
            json={"input_file_id": batch["input_file_id"], "endpoint": endpoint, "completion_window": "24h"},
        )
        batch = r.json()
    done = await openai_wait(http, batch["id"], {"completed"})
    raw = (await http.get(f"/v1/files/{done['output_file_id']}/content", headers=OPENAI_H)).content
    return parse_jsonl(raw)[0]["response"]["body"]


@pytest.mark.parametrize(
    ("endpoint", "body"),
    [("/v1/chat/completions", CHAT), ("/v1/responses", RESPONSES), ("/v1/embeddings", EMBED)],
)
async def test_openai_answers_match_the_batch_result(
    emu: RunningEmulator, http: httpx.AsyncClient, endpoint: str, body: dict[str, Any]
) -> None:
    live = await http.post(endpoint, headers=OPENAI_H, json=body)
    assert live.status_code == 200, live.text
    assert live.json() == await _openai_batch_body(http, endpoint, body)


async def test_openai_sdk_reads_the_answers(emu: RunningEmulator, http: httpx.AsyncClient) -> None:
    client = _openai(emu)
    chat = await client.chat.completions.create(**CHAT)
    raw = (await http.post("/v1/chat/completions", headers=OPENAI_H, json=CHAT)).json()
    assert chat.choices[0].message.content == raw["choices"][0]["message"]["content"]
    assert chat.usage is not None and chat.usage.prompt_tokens == raw["usage"]["prompt_tokens"]
    response = await client.responses.create(**RESPONSES)
    assert response.output_text.startswith("echo:")
    assert response.usage is not None and response.usage.output_tokens == 3
    vectors = await client.embeddings.create(**EMBED)
    assert [len(v.embedding) for v in vectors.data] == [8, 8]
    await client.close()


async def test_anthropic_answer_matches_the_batch_result(
    emu: RunningEmulator, http: httpx.AsyncClient
) -> None:
    client = _anthropic(emu)
    live = await client.messages.create(**CLAUDE)
    await client.close()
    r = await http.post(
        "/v1/messages/batches", headers=ANTHROPIC_H, json={"requests": [{"custom_id": "a", "params": CLAUDE}]}
    )
    batch_id = r.json()["id"]

    async def fetch() -> dict[str, Any]:
        return dict((await http.get(f"/v1/messages/batches/{batch_id}", headers=ANTHROPIC_H)).json())

    await eventually(fetch, lambda b: b["processing_status"] == "ended")
    raw = (await http.get(f"/v1/messages/batches/{batch_id}/results", headers=ANTHROPIC_H)).content
    batched = parse_jsonl(raw)[0]["result"]["message"]
    # the one difference the real provider has too: the usage tier
    assert batched["usage"].pop("service_tier") == "batch"
    answered = (await http.post("/v1/messages", headers=ANTHROPIC_H, json=CLAUDE)).json()
    assert answered["usage"].pop("service_tier") == "standard"
    assert answered == batched
    assert live.content[0].text == batched["content"][0]["text"]


async def test_gemini_answer_matches_the_batch_result(emu: RunningEmulator, http: httpx.AsyncClient) -> None:
    live = await http.post("/v1beta/models/gemini-2.5-flash:generateContent", headers=GEMINI_H, json=GEMINI)
    assert live.status_code == 200, live.text
    spec = {"batch": {"displayName": "rt", "inputConfig": {"requests": {"requests": [{"request": GEMINI}]}}}}
    op = (
        await http.post("/v1beta/models/gemini-2.5-flash:batchGenerateContent", headers=GEMINI_H, json=spec)
    ).json()

    async def fetch() -> dict[str, Any]:
        return dict((await http.get(f"/v1beta/{op['name']}", headers=GEMINI_H)).json())

    done = await eventually(fetch, lambda o: bool(o.get("done")))
    assert done["response"]["inlinedResponses"]["inlinedResponses"][0]["response"] == live.json()
    sdk = await _gemini(emu).aio.models.generate_content(model="gemini-2.5-flash", contents="hi gemini")
    assert sdk.text == live.json()["candidates"][0]["content"]["parts"][0]["text"]


async def test_openai_429_past_rpm_with_its_headers(limited: RunningEmulator) -> None:
    client = _openai(limited)
    ok = await client.chat.completions.with_raw_response.create(**CHAT)
    assert ok.headers["x-ratelimit-limit-requests"] == "2"
    assert ok.headers["x-ratelimit-remaining-requests"] == "1"
    await client.chat.completions.create(**CHAT)
    with pytest.raises(openai.RateLimitError) as exc:
        await client.chat.completions.create(**CHAT)
    await client.close()
    h = exc.value.response.headers
    assert h["x-ratelimit-remaining-requests"] == "0"
    assert 50 <= float(h["retry-after"]) <= 60
    assert 50_000 <= int(h["retry-after-ms"]) <= 60_000
    assert h["x-ratelimit-reset-requests"].endswith("s")
    assert exc.value.code == "rate_limit_exceeded"
    assert isinstance(exc.value.body, dict) and exc.value.body["type"] == "requests"


async def test_anthropic_429_past_rpm_with_its_headers(limited: RunningEmulator) -> None:
    client = _anthropic(limited)
    for _ in range(2):
        await client.messages.create(**CLAUDE)
    with pytest.raises(anthropic.RateLimitError) as exc:
        await client.messages.create(**CLAUDE)
    await client.close()
    h = exc.value.response.headers
    assert h["anthropic-ratelimit-requests-limit"] == "2"
    assert h["anthropic-ratelimit-requests-remaining"] == "0"
    assert h["anthropic-ratelimit-requests-reset"].endswith("Z")
    assert 50 <= int(h["retry-after"]) <= 60
    assert exc.value.body == {
        "type": "error",
        "error": {"type": "rate_limit_error", "message": exc.value.body["error"]["message"]},  # type: ignore[index]
        "request_id": exc.value.request_id,
    }


async def test_gemini_429_is_resource_exhausted_with_a_retry_delay(limited: RunningEmulator) -> None:
    client = _gemini(limited)
    for _ in range(2):
        await client.aio.models.generate_content(model="gemini-2.5-flash", contents="hi")
    with pytest.raises(genai_errors.ClientError) as exc:
        await client.aio.models.generate_content(model="gemini-2.5-flash", contents="hi")
    assert exc.value.code == 429 and exc.value.status == "RESOURCE_EXHAUSTED"
    details = exc.value.details["error"]["details"]
    delay = next(d["retryDelay"] for d in details if d["@type"].endswith("RetryInfo"))
    assert delay.endswith("s") and 50 <= int(delay[:-1]) <= 60


async def test_the_window_slides_with_the_clock_and_limits_are_per_provider(
    limited: RunningEmulator,
) -> None:
    async with httpx.AsyncClient(base_url=limited.url, timeout=10) as http:
        codes = [
            (await http.post("/v1/chat/completions", headers=OPENAI_H, json=CHAT)).status_code
            for _ in range(3)
        ]
        assert codes == [200, 200, 429]
        # another provider's window is its own
        r = await http.post("/v1/messages", headers=ANTHROPIC_H, json=CLAUDE)
        assert r.status_code == 200
        await http.post("/_emulator/clock/advance", json={"seconds": 60})
        assert (await http.post("/v1/chat/completions", headers=OPENAI_H, json=CHAT)).status_code == 200
        stats = (await http.get("/_emulator/stats")).json()["realtime"]
        assert stats["openai:ok"] == 3 and stats["openai:rate_limited"] == 1


async def test_the_admin_api_logs_each_real_time_call_with_its_time_answer_and_text(
    limited: RunningEmulator,
) -> None:
    flaky = {**CHAT, "messages": [{"role": "user", "content": "once more __flaky"}]}
    async with httpx.AsyncClient(base_url=limited.url, timeout=10) as http:
        # a bad body never reaches the limit: it is not a call the provider ran
        bad = await http.post("/v1/chat/completions", headers=OPENAI_H, json={"model": "gpt-4o-mini"})
        codes = [
            (await http.post("/v1/chat/completions", headers=OPENAI_H, json=b)).status_code
            for b in (CHAT, flaky, flaky)
        ]
        calls = (await http.get("/_emulator/realtime/calls")).json()["calls"]
        assert bad.status_code == 400 and codes == [200, 500, 429]
        assert [(c["provider"], c["answer"], c["text"]) for c in calls] == [
            ("openai", "ok", "what is two and two"),
            ("openai", "flaky", "once more __flaky"),
            ("openai", "rate_limited", "once more __flaky"),
        ]
        times = [c["at"] for c in calls]
        assert times == sorted(times)
        # a refusal logs the wait it asked for: until the first call leaves the minute's window
        assert [c["retry_after"] is None for c in calls] == [True, True, False]
        assert 59 <= calls[2]["retry_after"] <= 60
        await http.post("/_emulator/reset")
        assert (await http.get("/_emulator/realtime/calls")).json() == {"calls": []}


async def test_tpm_counts_the_answers_tokens() -> None:
    # CHAT is 5 words: 9 prompt tokens + 3 reply tokens = 12 a call
    async with run_emulator(fast_config(realtime_tpm=30)) as emu, httpx.AsyncClient(base_url=emu.url) as http:
        codes = [
            (await http.post("/v1/chat/completions", headers=OPENAI_H, json=CHAT)).status_code
            for _ in range(3)
        ]
        assert codes == [200, 200, 429]
        r = await http.post("/v1/chat/completions", headers=OPENAI_H, json=CHAT)
        assert r.json()["error"]["type"] == "tokens"
        assert r.headers["x-ratelimit-limit-tokens"] == "30"
        assert r.headers["x-ratelimit-remaining-tokens"] == "6"


async def test_flaky_fails_the_first_real_time_run_only(
    emu: RunningEmulator, http: httpx.AsyncClient
) -> None:
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "try me __flaky"}]}
    first = await http.post("/v1/chat/completions", headers=OPENAI_H, json=body)
    assert first.status_code == 500 and first.json()["error"]["type"] == "server_error"
    again = await http.post("/v1/chat/completions", headers=OPENAI_H, json=body)
    assert again.status_code == 200
    # keyed on the text: another request is flaky on its own first run
    other = {**body, "messages": [{"role": "user", "content": "me too __flaky"}]}
    assert (await http.post("/v1/chat/completions", headers=OPENAI_H, json=other)).status_code == 500
    claude = {**CLAUDE, "messages": [{"role": "user", "content": "x __flaky"}]}
    assert (await http.post("/v1/messages", headers=ANTHROPIC_H, json=claude)).json()["error"][
        "type"
    ] == "api_error"
    assert (await http.post("/v1/messages", headers=ANTHROPIC_H, json=claude)).status_code == 200
    gemini = {"contents": [{"role": "user", "parts": [{"text": "y __flaky"}]}]}
    url = "/v1beta/models/gemini-2.5-flash:generateContent"
    assert (await http.post(url, headers=GEMINI_H, json=gemini)).json()["error"]["status"] == "INTERNAL"
    assert (await http.post(url, headers=GEMINI_H, json=gemini)).status_code == 200


async def test_flaky_fails_a_custom_id_in_its_first_batch_only(
    emu: RunningEmulator, http: httpx.AsyncClient
) -> None:
    lines = [chat_line("steady", "plain"), chat_line("wobbly", "wobble __flaky")]

    async def run() -> dict[str, int]:
        batch = await openai_batch(http, lines)
        done = await openai_wait(http, batch["id"], {"completed"})
        codes: dict[str, int] = {}
        for key in ("output_file_id", "error_file_id"):
            if done[key]:
                raw = (await http.get(f"/v1/files/{done[key]}/content", headers=OPENAI_H)).content
                codes.update({x["custom_id"]: x["response"]["status_code"] for x in parse_jsonl(raw)})
        return codes

    assert await run() == {"steady": 200, "wobbly": 500}
    assert await run() == {"steady": 200, "wobbly": 200}


async def test_unknown_and_missing_models_and_bad_bodies(
    emu: RunningEmulator, http: httpx.AsyncClient
) -> None:
    client = _openai(emu)
    with pytest.raises(openai.NotFoundError) as nf:
        await client.chat.completions.create(
            model="no-such-model", messages=[{"role": "user", "content": "x"}]
        )
    assert nf.value.code == "model_not_found"
    await client.close()
    r = await http.post("/v1/chat/completions", headers=OPENAI_H, json={"messages": CHAT["messages"]})
    assert r.status_code == 400 and r.json()["error"]["code"] == "missing_required_parameter"
    r = await http.post("/v1/chat/completions", headers=OPENAI_H, json={"model": "gpt-4o", "messages": []})
    assert r.status_code == 400 and r.json()["error"]["code"] == "empty_array"
    r = await http.post("/v1/responses", headers=OPENAI_H, content=b"{not json")
    assert r.status_code == 400 and r.json()["error"]["type"] == "invalid_request_error"

    c = _anthropic(emu)
    with pytest.raises(anthropic.NotFoundError) as anf:
        await c.messages.create(model="gpt-4o", max_tokens=5, messages=[{"role": "user", "content": "x"}])
    assert anf.value.body == {
        "type": "error",
        "error": {"type": "not_found_error", "message": "model: gpt-4o"},
        "request_id": anf.value.request_id,
    }
    await c.close()
    no_max = {"model": "claude-haiku-4-5", "messages": [{"role": "user", "content": "x"}]}
    r = await http.post("/v1/messages", headers=ANTHROPIC_H, json=no_max)
    assert r.status_code == 400 and r.json()["error"]["message"] == "max_tokens: Field required"

    with pytest.raises(genai_errors.ClientError) as gnf:
        await _gemini(emu).aio.models.generate_content(model="not-a-gemini", contents="x")
    assert gnf.value.code == 404 and gnf.value.status == "NOT_FOUND"
    r = await http.post("/v1beta/models/gemini-2.5-flash:generateContent", headers=GEMINI_H, json={})
    assert r.status_code == 400 and r.json()["error"]["status"] == "INVALID_ARGUMENT"
    # nothing refused here counts as answered
    stats = (await http.get("/_emulator/stats")).json()["realtime"]
    assert "openai:ok" not in stats and stats["openai:error"] == 4 and stats["anthropic:error"] == 2


TOKEN_LIMIT_FLAG = ("--openai-enqueued-token-limit", "5000")


def test_the_emulator_command_takes_rpm_tpm_and_the_enqueued_token_limit() -> None:
    port = free_port()
    proc = subprocess.Popen(
        [CLI, "emulator", "--port", str(port), "--rpm", "1", "--tpm", "1000", *TOKEN_LIMIT_FLAG],
        env=clean_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert proc.stdout is not None
        assert "listening on" in proc.stdout.readline()
        url = f"http://127.0.0.1:{port}/v1/chat/completions"
        first = httpx.post(url, headers=OPENAI_H, json=CHAT)
        assert first.status_code == 200
        assert first.headers["x-ratelimit-limit-requests"] == "1"
        assert first.headers["x-ratelimit-limit-tokens"] == "1000"
        second = httpx.post(url, headers=OPENAI_H, json=CHAT)
        assert second.status_code == 429 and "retry-after" in second.headers
        config = httpx.patch(f"http://127.0.0.1:{port}/_emulator/config", json={}).json()
        assert config["openai_enqueued_token_limit"] == 5000
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()  # left open, the pipe is a ResourceWarning


async def test_a_flaky_request_that_failed_stays_failed_once_across_a_restart(tmp_path: Path) -> None:
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "restart __flaky"}]}
    async with (
        run_emulator(fast_config(state_dir=tmp_path)) as emu,
        httpx.AsyncClient(base_url=emu.url) as http,
    ):
        assert (await http.post("/v1/chat/completions", headers=OPENAI_H, json=body)).status_code == 500
    async with (
        run_emulator(fast_config(state_dir=tmp_path)) as emu,
        httpx.AsyncClient(base_url=emu.url) as http,
    ):
        assert (await http.post("/v1/chat/completions", headers=OPENAI_H, json=body)).status_code == 200

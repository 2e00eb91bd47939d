"""Every provider client against the emulator over real HTTP: lifecycle, faults, resume, recovery.

The emulator (durabatch.emulator) speaks the three batch APIs; its admin API injects faults
(`POST /_emulator/faults`) and steers batches (`hold`, `release`, `advance`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import httpx
import pytest

from durabatch.emulator import EmulatorConfig, RunningEmulator, run_emulator
from durabatch.providers import errors
from durabatch.providers.anthropic import AnthropicProvider
from durabatch.providers.base import (
    BatchProvider,
    ProviderBatchRef,
    ProviderStatus,
    ResultLine,
    ShardSubmission,
)
from durabatch.providers.gemini import GeminiProvider
from durabatch.providers.openai import OpenAIProvider
from tests.helpers import eventually
from tests.providers.conftest import make_shard

KEY = "test-key-0123456789abcdef"
PROVIDERS = ["openai", "anthropic", "gemini"]
ENDPOINT = {"openai": "/v1/chat/completions", "anthropic": "/v1/messages", "gemini": "generateContent"}
# The emulator stores per-request values under str keys, which aiohttp warns about; pytest turns
# warnings into errors. Emulator issue, not a client one.
pytestmark = pytest.mark.filterwarnings("ignore::aiohttp.web_exceptions.NotAppKeyWarning")

MODEL = {"openai": "gpt-4o-mini", "anthropic": "claude-haiku-4-5", "gemini": "gemini-2.5-flash"}


def body_for(provider: str, text: str) -> dict[str, Any]:
    if provider == "openai":
        return {"model": MODEL[provider], "messages": [{"role": "user", "content": text}]}
    if provider == "anthropic":
        return {"model": MODEL[provider], "max_tokens": 16, "messages": [{"role": "user", "content": text}]}
    return {"contents": [{"role": "user", "parts": [{"text": text}]}]}


def shard_for(
    provider: str, n: int = 5, tag: str = "db_b1_s0_r0", prefix: str = "req", **kw: Any
) -> ShardSubmission:
    bodies = [
        (f"{prefix}-{i}", body_for(provider, f"question {i} \u2028 with a line separator")) for i in range(n)
    ]
    return make_shard(tag=tag, endpoint=ENDPOINT[provider], bodies=bodies, model=MODEL[provider], **kw)


@pytest.fixture
async def emu() -> AsyncIterator[RunningEmulator]:
    config = EmulatorConfig(
        api_keys=[KEY],
        validating_seconds=0.05,
        ms_per_request=1.0,
        finalizing_seconds=0.05,
        expire_after_seconds=86400,
    )
    async with run_emulator(config, host="127.0.0.1", port=0) as running:
        yield running


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=10) as client:
        yield client


def client_for(provider: str, emu: RunningEmulator, http: httpx.AsyncClient, key: str = KEY) -> BatchProvider:
    kw: dict[str, Any] = {"retry_delay": 0.01}
    if provider == "openai":
        return OpenAIProvider(http, emu.url + "/v1", lambda: key, **kw)
    if provider == "anthropic":
        return AnthropicProvider(http, emu.url, lambda: key, **kw)
    return GeminiProvider(http, emu.url, lambda: key, **kw)


async def add_fault(http: httpx.AsyncClient, emu: RunningEmulator, **spec: Any) -> None:
    response = await http.post(emu.url + "/_emulator/faults", json=spec)
    assert response.status_code == 201, response.text


async def admin(
    http: httpx.AsyncClient, emu: RunningEmulator, ref: ProviderBatchRef, action: str, **body: Any
) -> None:
    response = await http.post(f"{emu.url}/_emulator/batches/{ref.provider_batch_id}/{action}", json=body)
    assert response.is_success, response.text


async def batch_view(http: httpx.AsyncClient, emu: RunningEmulator, ref: ProviderBatchRef) -> dict[str, Any]:
    """The emulator's own view of a batch (its phase), from the admin API."""
    response = await http.get(f"{emu.url}/_emulator/batches/{ref.provider_batch_id}")
    assert response.is_success, response.text
    view: dict[str, Any] = response.json()
    return view


async def cancels_sent(http: httpx.AsyncClient, emu: RunningEmulator, provider: str) -> int:
    """How many cancel calls the emulator has received for `provider` (Gemini counts per API version)."""
    response = await http.get(f"{emu.url}/_emulator/stats")
    ops: dict[str, int] = response.json()["requests"]
    return sum(n for op, n in ops.items() if op.startswith(f"{provider}:batches.cancel"))


async def wait_terminal(client: BatchProvider, ref: ProviderBatchRef, timeout: float = 10) -> ProviderStatus:
    return await eventually(
        lambda: client.status(ref), lambda s: s.terminal, timeout, 0.02, what="a terminal provider status"
    )


async def all_results(
    client: BatchProvider, ref: ProviderBatchRef, status: ProviderStatus
) -> list[ResultLine]:
    return [line async for line in client.results(ref, status)]


# -- lifecycle --------------------------------------------------------------------------------


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_full_lifecycle(provider: str, emu: RunningEmulator, http: httpx.AsyncClient) -> None:
    client = client_for(provider, emu, http)
    shard = shard_for(provider, 7)
    ref = await client.submit(shard)
    status = await wait_terminal(client, ref)
    assert status.state == "completed", status
    assert status.counts.total == 7 and status.counts.succeeded == 7
    lines = await all_results(client, ref, status)
    assert sorted(x.custom_id for x in lines) == sorted(f"req-{i}" for i in range(7))
    assert {x.outcome for x in lines} == {"succeeded"}
    assert all(x.input_tokens > 0 and x.output_tokens > 0 for x in lines)
    # resume from every cursor yields exactly the rest
    for i, line in enumerate(lines):
        rest = [x.custom_id async for x in client.results(ref, status, line.cursor)]
        assert rest == [x.custom_id for x in lines[i + 1 :]]
    # cancelling an ended batch is not an error: the cancel reaches the provider once and changes nothing
    before = await cancels_sent(http, emu, provider)
    await client.cancel(ref)
    assert await cancels_sent(http, emu, provider) == before + 1
    assert (await batch_view(http, emu, ref))["phase"] == "completed"


async def test_gemini_inline_lifecycle(emu: RunningEmulator, http: httpx.AsyncClient) -> None:
    client = client_for("gemini", emu, http)
    shard = replace(shard_for("gemini", 4), byte_size=1000)
    ref = await client.submit(shard)
    status = await wait_terminal(client, ref)
    assert status.state == "completed" and status.output_location == "inline"
    lines = await all_results(client, ref, status)
    assert sorted(x.custom_id for x in lines) == [f"req-{i}" for i in range(4)]
    rest = [x.custom_id async for x in client.results(ref, status, lines[1].cursor)]
    assert rest == [x.custom_id for x in lines[2:]]


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_cancel_with_partial_results(
    provider: str, emu: RunningEmulator, http: httpx.AsyncClient
) -> None:
    client = client_for(provider, emu, http)
    ref = await client.submit(shard_for(provider, 6))
    await admin(http, emu, ref, "hold")
    await client.cancel(ref)
    # the provider got the cancel: held, an OpenAI or Anthropic batch stays `cancelling` until
    # released; a Gemini job has no draining phase and is `cancelled` at once
    assert await cancels_sent(http, emu, provider) == 1
    draining = provider != "gemini"
    assert (await batch_view(http, emu, ref))["phase"] == ("cancelling" if draining else "cancelled")
    assert (await client.status(ref)).terminal is not draining
    await admin(http, emu, ref, "release")
    status = await wait_terminal(client, ref)
    assert status.state == "cancelled", status
    lines = await all_results(client, ref, status)
    assert len({x.custom_id for x in lines}) == len(lines)
    assert {x.outcome for x in lines} <= {"succeeded", "cancelled"}
    await client.cancel(ref)  # again, after the end: sent, refused quietly, nothing changes
    assert await cancels_sent(http, emu, provider) == 2
    assert (await batch_view(http, emu, ref))["phase"] == "cancelled"


# -- wire faults: classification ----------------------------------------------------------------


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize(
    ("status", "cls", "retryable"),
    [
        (429, errors.RateLimited, True),
        (500, errors.ProviderUnavailable, True),
        (503, errors.ProviderUnavailable, True),
        (529, errors.ProviderUnavailable, True),
        (400, errors.BadRequest, False),
        (401, errors.AuthenticationFailed, False),
        (403, errors.AuthenticationFailed, False),
        (404, errors.NotFound, False),
    ],
)
async def test_http_errors_classified(
    provider: str,
    status: int,
    cls: type[errors.ProviderError],
    retryable: bool,
    emu: RunningEmulator,
    http: httpx.AsyncClient,
) -> None:
    client = client_for(provider, emu, http)
    ref = await client.submit(shard_for(provider, 2))
    # as read back from workflow state long after submit (a fresh Anthropic 404 is retryable)
    ref = ref.model_copy(update={"extra": {}})
    spec: dict[str, Any] = {
        "fault": "http_error",
        "provider": provider,
        "operation": "batches.retrieve",
        "status": status,
        "count": 1,
    }
    if status in (429, 503):
        spec["retry_after"] = 3
    await add_fault(http, emu, **spec)
    with pytest.raises(errors.ProviderError) as info:
        await client.status(ref)
    err = info.value
    assert type(err) is cls and err.retryable is retryable and err.status_code == status
    if status in (429, 503):
        assert err.retry_after == 3.0
    if provider != "gemini":
        assert err.request_id, "the provider's request id is carried"
    # the fault fired once: the next call works
    assert (await client.status(ref)).counts.total in (0, 2)


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_bad_key_is_permanent_and_never_echoed(
    provider: str, emu: RunningEmulator, http: httpx.AsyncClient
) -> None:
    wrong = "sk-WRONG-key-abcdefghijklmnop"
    client = client_for(provider, emu, http, key=wrong)
    with pytest.raises(errors.AuthenticationFailed) as info:
        await client.submit(shard_for(provider, 1))
    assert not info.value.retryable
    for text in (str(info.value), info.value.message, repr(info.value)):
        assert wrong not in text and wrong[3:-4] not in text


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_dropped_connection_and_timeout_are_transport_errors(
    provider: str, emu: RunningEmulator, http: httpx.AsyncClient
) -> None:
    client = client_for(provider, emu, http)
    ref = await client.submit(shard_for(provider, 1))
    await add_fault(
        http, emu, fault="drop_connection", provider=provider, operation="batches.retrieve", count=1
    )
    with pytest.raises(errors.TransportError) as info:
        await client.status(ref)
    assert info.value.retryable
    await add_fault(
        http, emu, fault="slow", provider=provider, operation="batches.retrieve", count=1, delay_seconds=1.0
    )
    async with httpx.AsyncClient(timeout=0.2) as impatient:
        with pytest.raises(errors.TransportError, match="Timeout"):
            await client_for(provider, emu, impatient).status(ref)


# -- downloads ---------------------------------------------------------------------------------

DOWNLOAD_OP = {"openai": "files.content", "anthropic": "batches.results", "gemini": "files.download"}


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_cut_downloads_resume_each_line_once(
    provider: str, emu: RunningEmulator, http: httpx.AsyncClient
) -> None:
    client = client_for(provider, emu, http)
    ref = await client.submit(shard_for(provider, 40))
    status = await wait_terminal(client, ref)
    await add_fault(
        http,
        emu,
        fault="truncate_download",
        provider=provider,
        operation=DOWNLOAD_OP[provider],
        count=3,
        after_bytes=1500,
    )
    lines = await all_results(client, ref, status)
    ids = [x.custom_id for x in lines]
    assert len(ids) == len(set(ids)) == 40
    assert [x.cursor.lines for x in lines] == list(range(1, 41))
    stats = (await http.get(emu.url + "/_emulator/stats")).json()
    assert stats["faults_fired"]["truncate_download"] == 3


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_download_that_keeps_failing_raises_transport_error(
    provider: str, emu: RunningEmulator, http: httpx.AsyncClient
) -> None:
    client = client_for(provider, emu, http)
    ref = await client.submit(shard_for(provider, 5))
    status = await wait_terminal(client, ref)
    await add_fault(
        http,
        emu,
        fault="truncate_download",
        provider=provider,
        operation=DOWNLOAD_OP[provider],
        after_bytes=0,
    )
    with pytest.raises(errors.TransportError, match="download failed"):
        await all_results(client, ref, status)


# -- idempotent submit --------------------------------------------------------------------------


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_find_submitted_after_lost_create_response(
    provider: str, emu: RunningEmulator, http: httpx.AsyncClient
) -> None:
    client = client_for(provider, emu, http)
    # another shard's batch exists too, and must not be mistaken for ours
    other = await client.submit(shard_for(provider, 4, tag="db_b1_s1_r0", prefix="other"))
    shard = shard_for(provider, 3, tag="db_b1_s0_r0", attempt_started_at=time.time())
    assert await client.find_submitted(shard) is None
    await add_fault(http, emu, fault="lose_create_response", provider=provider, count=1)
    with pytest.raises(errors.RetryableProviderError):
        await client.submit(shard)
    found = await client.find_submitted(shard)
    assert found is not None and found.provider_batch_id != other.provider_batch_id
    status = await wait_terminal(client, found)
    assert sorted(x.custom_id for x in await all_results(client, found, status)) == [
        f"req-{i}" for i in range(3)
    ]


async def test_anthropic_duplicate_is_cancelled(emu: RunningEmulator, http: httpx.AsyncClient) -> None:
    client = client_for("anthropic", emu, http)
    shard = shard_for("anthropic", 3, attempt_started_at=time.time())
    first = await client.submit(shard)
    await admin(http, emu, first, "hold")
    await asyncio.sleep(0.01)
    second = await client.submit(shard)  # a retry whose first create had in fact succeeded
    await admin(http, emu, second, "hold")
    found = await client.find_submitted(shard)
    assert found is not None and found.provider_batch_id == first.provider_batch_id
    await admin(http, emu, first, "release")
    await admin(http, emu, second, "release")
    assert (await wait_terminal(client, second)).state == "cancelled"
    assert (await wait_terminal(client, first)).state == "completed"


# -- batch faults ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("provider", "code"), [("openai", "token_limit_exceeded"), ("gemini", "8")], ids=["openai", "gemini"]
)
async def test_quota_failure_is_retry_later(
    provider: str, code: str, emu: RunningEmulator, http: httpx.AsyncClient
) -> None:
    # a 200 on create, then a failed batch: a quota refusal to submit again, not bad input
    client = client_for(provider, emu, http)
    await add_fault(http, emu, fault="token_limit_exceeded", provider=provider, count=1)
    ref = await client.submit(shard_for(provider, 2))
    status = await wait_terminal(client, ref)
    assert status.state == "failed" and status.retry_later and status.failure_code == code


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_all_requests_fail(provider: str, emu: RunningEmulator, http: httpx.AsyncClient) -> None:
    client = client_for(provider, emu, http)
    await add_fault(http, emu, fault="all_fail", provider=provider, count=1, request_status=400)
    ref = await client.submit(shard_for(provider, 3))
    status = await wait_terminal(client, ref)
    if provider == "openai":
        assert status.state == "completed" and status.output_location is None and status.error_location
    lines = await all_results(client, ref, status)
    assert sorted(x.custom_id for x in lines) == [f"req-{i}" for i in range(3)]
    assert {x.outcome for x in lines} == {"failed"} and all(x.error for x in lines)


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_some_requests_fail(provider: str, emu: RunningEmulator, http: httpx.AsyncClient) -> None:
    client = client_for(provider, emu, http)
    await add_fault(
        http, emu, fault="request_errors", provider=provider, count=1, requests=2, request_status=500
    )
    ref = await client.submit(shard_for(provider, 5))
    status = await wait_terminal(client, ref)
    lines = await all_results(client, ref, status)
    outcomes = {x.custom_id: x.outcome for x in lines}
    assert len(outcomes) == 5 and list(outcomes.values()).count("failed") == 2
    failed = [x for x in lines if x.outcome == "failed"]
    assert all(x.error for x in failed)


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_expiry_with_partial_results(
    provider: str, emu: RunningEmulator, http: httpx.AsyncClient
) -> None:
    client = client_for(provider, emu, http)
    emu.state.config.ms_per_request = 40.0  # copied by the batch when it is created
    await add_fault(http, emu, fault="expire_after", provider=provider, count=1, seconds=0.35)
    ref = await client.submit(shard_for(provider, 20))
    status = await wait_terminal(client, ref)
    assert status.state == "expired", status
    lines = await all_results(client, ref, status)
    ids = [x.custom_id for x in lines]
    assert len(ids) == len(set(ids))
    succeeded = [x for x in lines if x.outcome == "succeeded"]
    assert 0 < len(succeeded) < 20
    assert {x.outcome for x in lines} <= {"succeeded", "expired"}


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_crlf_line_ends_are_read_line_for_line(
    provider: str, emu: RunningEmulator, http: httpx.AsyncClient
) -> None:
    """Result files with CRLF line ends: the trailing \\r is stripped, every record parses."""
    client = client_for(provider, emu, http)
    await add_fault(http, emu, fault="crlf_lines", provider=provider, count=1)
    ref = await client.submit(shard_for(provider, 6))
    status = await wait_terminal(client, ref)
    lines = await all_results(client, ref, status)
    assert sorted(x.custom_id for x in lines) == [f"req-{i}" for i in range(6)]
    assert {x.outcome for x in lines} == {"succeeded"}


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_odd_output_files(provider: str, emu: RunningEmulator, http: httpx.AsyncClient) -> None:
    """Malformed lines are skipped (and logged), duplicates passed through for the idempotent
    ingest, missing results simply absent: the stream itself never breaks."""
    client = client_for(provider, emu, http)
    for fault in ("malformed_output_lines", "duplicate_output_lines", "missing_results"):
        await add_fault(http, emu, fault=fault, provider=provider, count=1, requests=1)
    ref = await client.submit(shard_for(provider, 8))
    status = await wait_terminal(client, ref)
    lines = await all_results(client, ref, status)
    ids = [x.custom_id for x in lines]
    assert set(ids) <= {f"req-{i}" for i in range(8)}
    assert 5 <= len(set(ids)) <= 7
    assert [x.cursor.lines for x in lines] == sorted(x.cursor.lines for x in lines)


async def test_openai_stuck_finalizing_is_not_terminal(emu: RunningEmulator, http: httpx.AsyncClient) -> None:
    client = client_for("openai", emu, http)
    await add_fault(http, emu, fault="stuck_finalizing", provider="openai", count=1)
    ref = await client.submit(shard_for("openai", 2))
    await asyncio.sleep(0.4)
    status = await client.status(ref)
    assert status.state == "finalizing" and not status.terminal


async def test_anthropic_same_size_shard_of_another_owner_is_left_alone(
    emu: RunningEmulator, http: httpx.AsyncClient
) -> None:
    client = client_for("anthropic", emu, http)
    started = time.time()
    other = await client.submit(shard_for("anthropic", 3, tag="db_b1_s1_r0", prefix="other"))
    await admin(http, emu, other, "hold")
    shard = shard_for("anthropic", 3, attempt_started_at=started)
    await add_fault(http, emu, fault="lose_create_response", provider="anthropic", count=1)
    with pytest.raises(errors.RetryableProviderError):
        await client.submit(shard)
    shard = replace(shard, exclude_batch_ids=frozenset({other.provider_batch_id}))
    found = await client.find_submitted(shard)
    assert found is not None and found.provider_batch_id != other.provider_batch_id
    await admin(http, emu, other, "release")
    assert (await wait_terminal(client, other)).state == "completed"


async def test_anthropic_ended_batch_of_another_owner_is_never_claimed_or_cancelled(
    emu: RunningEmulator, http: httpx.AsyncClient
) -> None:
    # Same size, same time window, not known to the store: only its results tell it is not ours.
    client = client_for("anthropic", emu, http)
    started = time.time()
    foreign = await client.submit(shard_for("anthropic", 3, tag="someone_else", prefix="theirs"))
    assert (await wait_terminal(client, foreign)).state == "completed"
    ours = shard_for("anthropic", 3, attempt_started_at=started)
    assert await client.find_submitted(ours) is None
    assert (await client.status(foreign)).provider_status == "ended"

    # and an ended batch that is ours is still found by its results
    mine = await client.submit(ours)
    assert (await wait_terminal(client, mine)).state == "completed"
    found = await client.find_submitted(ours)
    assert found is not None and found.provider_batch_id == mine.provider_batch_id


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_realtime_call(provider: str, emu: RunningEmulator, http: httpx.AsyncClient) -> None:
    client = client_for(provider, emu, http)
    body = body_for(provider, "hello")
    if provider == "gemini":
        body["model"] = MODEL[provider]
    answer = await client.realtime(ENDPOINT[provider], body)
    assert isinstance(answer, dict) and answer

"""run_realtime_chunk against the real PostgreSQL and the emulator over HTTP, in ActivityEnvironment.

Each result is written once, in the row ingest would write for the same answer in a batch; a
cancelled chunk run again never sends a request whose result it wrote; a 429's Retry-After holds
every call; rpm and tpm pace the calls.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import httpx
import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities import ActivityDeps
from activities.realtime import RealtimeActivities
from durabatch import contract
from durabatch.activity_api import RealtimeChunkInput, RealtimeChunkResult
from durabatch.emulator import EmulatorConfig, expected_chat_response, run_emulator
from durabatch.emulator.server import RunningEmulator
from durabatch.models import RealtimeLimits
from durabatch.providers.prices import cost_of, price_of
from durabatch.providers.registry import build_provider
from durabatch.results_format import provider_line
from durabatch.settings import Settings
from durabatch.store import requests
from durabatch.store.pool import Pool

KEY = "test-key"
ENDPOINT = {"openai": "/v1/chat/completions", "anthropic": "/v1/messages", "gemini": "generateContent"}
MODEL = {"openai": "gpt-4o-mini", "anthropic": "claude-haiku-4-5", "gemini": "gemini-2.5-flash"}


def body_for(provider: str, text: str) -> dict[str, Any]:
    if provider == "openai":
        return {"model": MODEL[provider], "messages": [{"role": "user", "content": text}]}
    if provider == "anthropic":
        return {"model": MODEL[provider], "max_tokens": 16, "messages": [{"role": "user", "content": text}]}
    return {"contents": [{"role": "user", "parts": [{"text": text}]}]}


@dataclass
class Wire:
    """What crossed the wire, seen from the client: (monotonic time, body text) of each request
    sent and (monotonic time, status, seconds to wait) of each answer."""

    sent: list[tuple[float, str]] = field(default_factory=list)
    answers: list[tuple[float, int, str | None]] = field(default_factory=list)

    async def on_request(self, request: httpx.Request) -> None:
        self.sent.append((time.monotonic(), request.content.decode()))

    async def on_response(self, response: httpx.Response) -> None:
        # the wait the provider asked for: `retry-after-ms` when sent (exact), else `Retry-After`
        ms = response.headers.get("retry-after-ms")
        wait = str(int(ms) / 1000) if ms is not None else response.headers.get("retry-after")
        self.answers.append((time.monotonic(), response.status_code, wait))


@pytest.fixture(autouse=True)
def _keys(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GEMINI_API_KEY"):
        monkeypatch.setenv(name, KEY)
    yield


class Chunk:
    """A staged batch, the emulator and the activity's dependencies, for one test."""

    def __init__(self, pool: Pool, emu: RunningEmulator, provider: str) -> None:
        self.pool = pool
        self.emu = emu
        self.provider = provider
        self.batch_id = "rt-" + uuid.uuid4().hex[:10]
        self.wire = Wire()
        self.http = httpx.AsyncClient(
            timeout=30, event_hooks={"request": [self.wire.on_request], "response": [self.wire.on_response]}
        )
        settings = Settings(
            openai_base_url=f"{emu.url}/v1", anthropic_base_url=emu.url, gemini_base_url=emu.url
        )
        self.deps = ActivityDeps(
            pool=pool, settings=settings, http=self.http, provider_factory=build_provider
        )

    async def stage(self, bodies: list[dict[str, Any]]) -> list[str]:
        ids = [f"r{i:03d}" for i in range(len(bodies))]
        await self.pool.execute(
            "INSERT INTO batches (batch_id, workflow_id, provider, endpoint, model) VALUES ($1, $2, $3, $4, $5)",
            self.batch_id,
            "batch-" + self.batch_id,
            self.provider,
            ENDPOINT[self.provider],
            MODEL[self.provider],
        )
        async with self.pool.acquire() as conn:
            await requests.copy_requests(
                conn,
                [
                    (self.batch_id, cid, i + 1, 0, 0, body, len(json.dumps(body)))
                    for i, (cid, body) in enumerate(zip(ids, bodies, strict=True))
                ],
            )
        return ids

    def input(self, line_from: int, line_to: int, **limits: Any) -> RealtimeChunkInput:
        return RealtimeChunkInput(
            batch_id=self.batch_id,
            provider=self.provider,
            endpoint=ENDPOINT[self.provider],
            model=MODEL[self.provider],
            line_from=line_from,
            line_to=line_to,
            limits=RealtimeLimits(**limits),
        )

    async def run(
        self,
        inp: RealtimeChunkInput,
        env: ActivityEnvironment | None = None,
        activities: RealtimeActivities | None = None,
    ) -> RealtimeChunkResult:
        result: RealtimeChunkResult = await (env or ActivityEnvironment()).run(
            (activities or RealtimeActivities(self.deps)).run_realtime_chunk, inp
        )
        return result

    async def rows(self) -> dict[str, Any]:
        found = await self.pool.fetch(
            """SELECT custom_id, round, outcome, status_code, line, error, input_tokens, output_tokens,
                      cached_tokens, cost_usd FROM results WHERE batch_id = $1""",
            self.batch_id,
        )
        return {r["custom_id"]: r for r in found}

    async def realtime_stats(self) -> dict[str, int]:
        stats = (await self.http.get(f"{self.emu.url}/_emulator/stats")).json()
        return dict(stats["realtime"])


def emulator_config(**overrides: Any) -> EmulatorConfig:
    cfg = EmulatorConfig(api_keys=[KEY], validating_seconds=0.05, finalizing_seconds=0.05)
    for k, v in overrides.items():
        setattr(cfg, k, v)
    return cfg


@pytest.fixture
async def chunk_factory(pool: Pool) -> AsyncIterator[Any]:
    opened: list[tuple[Chunk, Any]] = []

    async def make(provider: str = "openai", **config: Any) -> Chunk:
        running = run_emulator(emulator_config(**config))
        emu = await running.__aenter__()
        c = Chunk(pool, emu, provider)
        opened.append((c, running))
        return c

    yield make
    for c, running in opened:
        await c.http.aclose()
        await running.__aexit__(None, None, None)


async def test_fifty_requests_under_rpm_limits_are_each_written_once(chunk_factory: Any) -> None:
    # the emulator allows 30 calls a second; the client paces itself at 1,500 a minute (25 a
    # second, a second's burst): where the two disagree, the emulator's 429s hold the client back
    c: Chunk = await chunk_factory(realtime_rpm=30, realtime_window_seconds=1.0)
    bodies = [body_for("openai", f"question number {i}") for i in range(50)]
    ids = await c.stage(bodies)
    started = time.monotonic()
    env = ActivityEnvironment()
    beats: list[Any] = []
    env.on_heartbeat = lambda *details: beats.append(details[0])
    result = await c.run(c.input(1, 51, concurrency=8, rpm=1500), env)
    elapsed = time.monotonic() - started

    assert (result.requests, result.written, result.skipped, result.succeeded, result.failed) == (
        50,
        50,
        0,
        50,
        0,
    )
    assert elapsed >= 0.9, "50 calls at 25 a second after a burst of 25 take a second"
    rows = await c.rows()
    assert sorted(rows) == ids
    price = price_of("openai", MODEL["openai"])
    assert price is not None
    for cid, body in zip(ids, bodies, strict=True):
        row = rows[cid]
        line = json.loads(row["line"])
        # the provider's batch output line, with the answer a batch would have had
        assert line["custom_id"] == cid and line["error"] is None
        assert line["response"]["status_code"] == 200
        assert line["response"]["body"] == expected_chat_response("openai", ENDPOINT["openai"], body)
        assert provider_line("openai", dict(row)) == row["line"]
        assert (row["outcome"], row["status_code"], row["round"]) == ("succeeded", 200, 0)
        assert row["input_tokens"] == line["response"]["body"]["usage"]["prompt_tokens"]
        # real-time price: twice the batch price
        batch_cost = cost_of(price, row["input_tokens"], 0, row["output_tokens"])
        assert row["cost_usd"] == pytest.approx(Decimal(2) * batch_cost)
    stats = await c.realtime_stats()
    assert stats["openai:ok"] == 50
    # progress is the count of requests done, heartbeated as results are written
    assert beats == sorted(beats) and beats[-1] == 50 and len(set(beats)) > 10
    assert result.input_tokens == sum(r["input_tokens"] for r in rows.values())


async def test_a_cancelled_chunk_run_again_never_resends_a_finished_request(chunk_factory: Any) -> None:
    c: Chunk = await chunk_factory()
    ids = await c.stage([body_for("openai", f"item {i}") for i in range(30)])
    env = ActivityEnvironment()
    # 10 calls a second, so the chunk is still running when it is cancelled
    first = asyncio.create_task(c.run(c.input(1, 31, concurrency=3, rpm=600), env))
    deadline = time.monotonic() + 20
    while len(await c.rows()) < 12:
        assert time.monotonic() < deadline and not first.done()
        await asyncio.sleep(0.05)
    env.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    await asyncio.sleep(0.3)  # a call already on the wire is answered (and counted) by now
    written_before = await c.rows()
    answered_before = (await c.realtime_stats())["openai:ok"]
    assert 12 <= len(written_before) < 30
    # answered but not yet written when the cancel came: at most one per worker
    assert answered_before - len(written_before) <= 3
    texts_done = {
        json.loads(r["line"])["response"]["body"]["choices"][0]["message"]["content"]
        for r in written_before.values()
    }
    sent_before = len(c.wire.sent)

    result = await c.run(c.input(1, 31, concurrency=3))
    assert result.requests == 30 and result.skipped == len(written_before)
    assert result.written == 30 - len(written_before)
    rows = await c.rows()
    assert sorted(rows) == ids
    # the rows written before the cancel are untouched, and none of their requests went out again
    assert all(rows[cid]["line"] == written_before[cid]["line"] for cid in written_before)
    resent = [text for _, text in c.wire.sent[sent_before:]]
    assert len(resent) == result.written
    again = {
        expected_chat_response("openai", ENDPOINT["openai"], json.loads(text))["choices"][0]["message"][
            "content"
        ]
        for text in resent
    }
    assert not again & texts_done
    assert (await c.realtime_stats())["openai:ok"] == answered_before + result.written


async def test_retry_after_holds_every_call(chunk_factory: Any) -> None:
    # 4 calls per 2 seconds at the emulator, no limit at the client, 8 calls at once: the client
    # learns from 429s (and from `x-ratelimit-remaining-requests: 0`, which holds it too)
    c: Chunk = await chunk_factory(realtime_rpm=4, realtime_window_seconds=2.0)
    await c.stage([body_for("openai", f"wait {i}") for i in range(12)])
    result = await c.run(c.input(1, 13, concurrency=8))
    assert result.written == 12 and result.succeeded == 12

    limited = [(t, float(ra)) for t, status, ra in c.wire.answers if status == 429 and ra is not None]
    assert limited, "the emulator refused some calls"
    for at, wait in limited:
        # nothing was sent after a 429 arrived until its Retry-After had passed (a call that had
        # already left when the 429 arrived is not a breach: allow it the time it takes to leave)
        early = [t for t, _ in c.wire.sent if at + 0.05 < t < at + wait - 0.05]
        assert not early, f"{len(early)} calls sent within {wait}s of a 429"
    assert (await c.realtime_stats())["openai:rate_limited"] == len(limited)


async def test_tpm_paces_the_calls(chunk_factory: Any) -> None:
    c: Chunk = await chunk_factory()
    # each call is charged its prompt bytes / 4: about 20 tokens; at 2,400 a minute (40 a second,
    # a second's burst) 8 calls cannot all go out at once
    await c.stage([body_for("openai", f"token paced call {i}") for i in range(8)])
    started = time.monotonic()
    result = await c.run(c.input(1, 9, concurrency=8, tpm=2400))
    assert result.written == 8
    assert time.monotonic() - started >= 1.5
    first, last = c.wire.sent[0][0], c.wire.sent[-1][0]
    assert last - first >= 1.5


@pytest.mark.parametrize("provider", ["openai", "anthropic", "gemini"])
async def test_each_provider_flaky_and_refused_requests(chunk_factory: Any, provider: str) -> None:
    c: Chunk = await chunk_factory(provider)
    bodies = [body_for(provider, "plain"), body_for(provider, "shaky __flaky"), body_for(provider, "third")]
    # a request the provider refuses: its outcome, as a batch would record it
    if provider == "openai":
        bodies[2] = {"model": "no-such-model", "messages": [{"role": "user", "content": "x"}]}
    elif provider == "anthropic":
        bodies[2] = {"model": MODEL[provider], "messages": [{"role": "user", "content": "x"}]}
    else:
        bodies[2] = {"contents": []}
    ids = await c.stage(bodies)
    # the range is half-open and picks lines 1..3 of the shard
    result = await c.run(c.input(1, 4))
    assert (result.written, result.succeeded, result.failed) == (3, 2, 1)
    rows = await c.rows()
    assert [rows[i]["outcome"] for i in ids] == ["succeeded", "succeeded", "failed"]
    assert rows[ids[2]]["status_code"] in (400, 404) and rows[ids[2]]["error"]
    assert rows[ids[2]]["cost_usd"] is None and rows[ids[0]]["cost_usd"] is not None
    stats = await c.realtime_stats()
    assert stats[f"{provider}:flaky"] == 1 and stats[f"{provider}:ok"] == 2
    for cid in ids:
        line = json.loads(rows[cid]["line"])
        assert line.get("custom_id", line.get("key")) == cid
    if provider == "anthropic":
        assert json.loads(rows[ids[0]]["line"])["result"]["type"] == "succeeded"
        assert json.loads(rows[ids[2]]["line"])["result"]["type"] == "errored"
    if provider == "gemini":
        assert json.loads(rows[ids[2]]["line"])["error"]["status"] == "INVALID_ARGUMENT"


async def test_only_the_range_runs(chunk_factory: Any) -> None:
    c: Chunk = await chunk_factory()
    ids = await c.stage([body_for("openai", f"n {i}") for i in range(10)])
    result = await c.run(c.input(4, 8))
    assert result.requests == 4
    assert sorted(await c.rows()) == ids[3:7]


async def test_chunks_running_at_once_on_a_worker_share_one_budget(chunk_factory: Any) -> None:
    c: Chunk = await chunk_factory()
    await c.stage([body_for("openai", f"shared {i}") for i in range(20)])
    worker = RealtimeActivities(c.deps)
    started = time.monotonic()
    # 600 a minute is 10 a second after a burst of 10: 20 calls need a second, whichever chunk
    # makes them; two budgets would let both chunks burst at once
    first, second = await asyncio.gather(
        c.run(c.input(1, 11, rpm=600), activities=worker), c.run(c.input(11, 21, rpm=600), activities=worker)
    )
    assert first.written + second.written == 20
    assert time.monotonic() - started >= 0.9


async def test_what_no_retry_can_fix_fails_the_attempt_for_good(
    chunk_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    c: Chunk = await chunk_factory()
    await c.stage([body_for("openai", "x")])
    bad_endpoint = c.input(1, 2).model_copy(update={"endpoint": "/v1/messages"})
    with pytest.raises(ApplicationError) as exc:
        await c.run(bad_endpoint)
    assert exc.value.type == contract.INVALID_INPUT and exc.value.non_retryable
    monkeypatch.setenv("OPENAI_API_KEY", "sk-wrong-0123456789")
    with pytest.raises(ApplicationError) as auth:
        await c.run(c.input(1, 2))
    assert auth.value.type == contract.AUTHENTICATION_FAILED and auth.value.non_retryable
    assert "sk-wrong-0123456789" not in str(auth.value)
    assert await c.rows() == {}


async def test_the_workers_settings_pace_a_chunk_that_sets_no_limits(chunk_factory: Any) -> None:
    c: Chunk = await chunk_factory()
    c.deps.settings = c.deps.settings.model_copy(update={"openai_rpm": 600})
    await c.stage([body_for("openai", f"paced by settings {i}") for i in range(20)])
    started = time.monotonic()
    result = await c.run(c.input(1, 21))
    assert result.written == 20
    # DURABATCH_OPENAI_RPM=600: a burst of 10, then 10 a second
    assert time.monotonic() - started >= 0.9

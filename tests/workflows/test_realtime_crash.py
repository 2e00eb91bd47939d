"""Real time with the worker SIGKILLed in the middle (a `durabatch worker` process; the real dev
server, PostgreSQL and the emulator over HTTP): a real-time batch holding the emulator's rate
limit across the crash, and a deadline fallback that loses its worker while the batch API cancels.

The emulator's window is shortened to WINDOW seconds (`realtime_window_seconds`) so that a limit
is seen in seconds, not minutes. The first worker paces itself by a rate (a token bucket refilled
per second, `DURABATCH_OPENAI_RPM`), given as the same rate per minute: LIMIT * 60 / WINDOW; the
worker that takes over after the crash has no rate of its own and paces by the provider's
rate-limit headers and 429s. Both must reach the limit and never pass it."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client

from durabatch.models import workflow_id_for
from durabatch.store.pool import Pool
from tests.helpers import eventually
from tests.stack import assert_one_outcome_each, chat_requests, emulator_config
from tests.worker_process import ProcessStack, process_stack
from tests.workflows.crash_helpers import (
    STICKY_SECONDS,
    emulator_batches_of,
    kill_when,
    new_id,
    phase_of,
    stack_with_receiver,
    webhook,
)

pytestmark = [pytest.mark.slow]

ENDPOINT = "/v1/chat/completions"
WINDOW = 2.0
LIMIT = 10  # calls per WINDOW: 5 a second
CONCURRENCY = 4


async def result_ids(stack: ProcessStack, batch_id: str) -> set[str]:
    rows = await stack.pool.fetch("SELECT custom_id FROM results WHERE batch_id = $1", batch_id)
    return {r["custom_id"] for r in rows}


def admitted_per_window(times: list[float]) -> int:
    """The most of these calls any window of WINDOW seconds (ending at one of them) holds."""
    return max(sum(1 for u in times if t - WINDOW < u <= t) for t in times)


def achieved_per_window(times: list[float]) -> float:
    """Calls per WINDOW over the whole windows a stretch of calls spans, from its first call."""
    whole = int((times[-1] - times[0]) // WINDOW)
    assert whole >= 2, f"a stretch of {times[-1] - times[0]:.1f} s is too short to measure a rate"
    return sum(1 for t in times if t < times[0] + whole * WINDOW) / whole


async def test_real_time_holds_the_rate_limit_across_a_crash_and_sends_no_finished_request_again(
    temporal_client: Client, pool: Pool, database_url: str, tmp_path: Path
) -> None:
    n = 50
    requests = chat_requests(n)
    text_of = {r["custom_id"]: r["body"]["messages"][0]["content"] for r in requests}
    config = emulator_config(realtime_rpm=LIMIT, realtime_window_seconds=WINDOW)
    rpm = round(LIMIT * 60 / WINDOW)
    async with process_stack(
        temporal_client,
        pool,
        database_url,
        config,
        log_dir=tmp_path,
        sticky_timeout_seconds=STICKY_SECONDS,
        openai_rpm=rpm,
    ) as stack:
        batch_id = new_id()
        handle = await stack.start(
            batch_id=batch_id,
            provider="openai",
            endpoint=ENDPOINT,
            requests=requests,
            mode="realtime",
            realtime={"concurrency": CONCURRENCY},
        )
        # more than two whole windows' calls written (so the stretch before the kill spans two
        # windows), and more than two windows' still to go (so does the stretch after it)
        await eventually(
            lambda: result_ids(stack, batch_id),
            lambda ids: 2 * LIMIT + 4 <= len(ids) < n - 2 * LIMIT - 2,
            timeout=30,
            interval=0.05,
            what="a real-time chunk part written",
        )
        stack.workers.kill()
        killed_at = stack.emulator.state.now()
        finished_before = await result_ids(stack, batch_id)
        # the worker that takes over paces by the provider alone: its rate-limit headers and 429s
        stack.workers.settings = stack.workers.settings.model_copy(update={"openai_rpm": None})
        await stack.workers.start()
        summary = await asyncio.wait_for(handle.result(), 90)
        calls: list[dict[str, Any]] = (await stack.admin("GET", "/realtime/calls"))["calls"]

    assert summary.status == "completed", summary
    assert summary.counts.succeeded == n and summary.counts.realtime == n, summary.counts
    assert summary.provider_batch_ids == []
    billed = await stack.pool.fetchval("SELECT sum(input_tokens) FROM results WHERE batch_id = $1", batch_id)
    assert summary.input_tokens == billed
    await assert_one_outcome_each(stack, batch_id)

    answered = Counter(c["text"] for c in calls if c["answer"] == "ok")
    assert set(answered) == set(text_of.values())
    # a request whose result was written is never sent again; at most the calls in flight at the
    # kill (answered, their results not yet written) are asked a second time
    after = Counter(c["text"] for c in calls if c["at"] > killed_at and c["answer"] == "ok")
    assert not {text_of[cid] for cid in finished_before} & set(after)
    twice = [t for t, k in answered.items() if k > 1]
    assert len(twice) <= CONCURRENCY, twice

    admitted = [c["at"] for c in calls if c["answer"] != "rate_limited"]
    assert admitted_per_window(admitted) <= LIMIT
    for stretch in ([t for t in admitted if t < killed_at], [t for t in admitted if t > killed_at]):
        rate = achieved_per_window(stretch)
        assert 0.9 * LIMIT <= rate <= LIMIT, (rate, stretch)
    # 429s are honoured: while one's Retry-After runs, only the calls already in flight when it
    # came (the other CONCURRENCY - 1 at most) reach the provider; and never a storm: in any
    # window at most those, and as many again sent a hair before the window had room (the
    # client's clock and the reset's rounding against the emulator's)
    refused = [(c["at"], c["retry_after"]) for c in calls if c["answer"] == "rate_limited"]
    for at, wait in refused:
        during = [c["at"] for c in calls if at < c["at"] < at + wait]
        assert len(during) < CONCURRENCY, (at, wait, during)
    assert not refused or admitted_per_window([at for at, _ in refused]) <= 2 * CONCURRENCY, refused


async def test_a_deadline_fallback_that_loses_its_worker_while_the_batch_api_cancels_ends_in_time(
    temporal_client: Client, pool: Pool, database_url: str, tmp_path: Path
) -> None:
    n, deadline = 300, 40.0
    requests = chat_requests(n)
    text_of = {r["custom_id"]: r["body"]["messages"][0]["content"] for r in requests}
    # 200 ms a request: the batch API alone would take a minute. Planned at the fallback's 600 a
    # minute (no `realtime.rpm`) for what the provider has not finished, with the 4 s margin, the
    # batch hands over about 7 s in; a cancel takes 3 s to settle (the emulator's finalizing
    # time), and real time, unlimited here, needs a second or two for the rest
    config = emulator_config(ms_per_request=200.0, finalizing_seconds=3.0)
    async with stack_with_receiver(temporal_client, pool, database_url, config, tmp_path) as (
        stack,
        receiver,
    ):
        batch_id = new_id()
        handle = await stack.start(
            batch_id=batch_id,
            provider="openai",
            endpoint=ENDPOINT,
            requests=requests,
            deadline_seconds=deadline,
            realtime={"concurrency": 8},
            handlers=[webhook(receiver.url)],
        )

        async def cancelling() -> bool:
            pbid = await pool.fetchval(
                "SELECT provider_batch_id FROM provider_batches WHERE batch_id = $1 AND round = 0",
                batch_id,
            )
            return pbid is not None and await phase_of(stack, pbid) == "cancelling"

        await kill_when(stack, [handle], cancelling, what="the fallback's cancel settling", timeout=40)
        summary = await asyncio.wait_for(handle.result(), 90)
        described = await handle.describe()
        calls: list[dict[str, Any]] = (await stack.admin("GET", "/realtime/calls"))["calls"]

    assert stack.workers.killed == 1
    assert summary.status == "completed" and summary.counts.succeeded == n, summary.counts
    assert described.close_time is not None
    took = (described.close_time - described.start_time).total_seconds()
    assert took < deadline, took
    by_batch_api = {
        r["custom_id"]
        for r in await pool.fetch(
            "SELECT custom_id FROM results WHERE batch_id = $1 AND round = 0 AND outcome = 'succeeded'",
            batch_id,
        )
    }
    assert 0 < len(by_batch_api) < n, len(by_batch_api)
    assert summary.counts.realtime == n - len(by_batch_api)
    (provider_batch,) = emulator_batches_of(stack, workflow_id_for(batch_id))
    assert provider_batch.timeline.phase.value == "cancelled"
    # what the batch API finished stays; real time ran each of the others once
    answered = Counter(c["text"] for c in calls if c["answer"] == "ok")
    assert answered == Counter(text_of[cid] for cid in text_of if cid not in by_batch_api)
    await assert_one_outcome_each(stack, batch_id)
    assert len(receiver.accepted) == 1 and summary.handlers[0].status == "succeeded"

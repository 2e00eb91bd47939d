"""Large jobs with the worker SIGKILLed in the middle (a `durabatch worker` process; the real dev
server, PostgreSQL and the emulator over HTTP): retry rounds, and shards split at a batch's caps.

Each kill lands at a moment found from the store or the emulator, while no activity attempt runs
(see `crash_helpers.kill_when`), and the batch must still end with every request one outcome and
nothing at the provider twice. Real time and the deadline fallback: test_realtime_crash.py."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from temporalio.client import Client

from durabatch.models import workflow_id_for
from durabatch.requests_file import RequestsValidator
from durabatch.store.pool import Pool
from tests.helpers import eventually
from tests.stack import SummaryHandle, assert_one_outcome_each, chat_requests, emulator_config
from tests.worker_process import process_stack
from tests.workflows.crash_helpers import (
    STICKY_SECONDS,
    custom_ids_per_batch,
    emulator_batches_of,
    kill_when,
    new_id,
    phase_of,
    stack_with_receiver,
    webhook,
)
from tests.workflows.test_retry_rounds import rows_by_request

pytestmark = [pytest.mark.slow]

ENDPOINT = "/v1/chat/completions"


async def test_two_retry_rounds_survive_a_kill_while_round_1_runs(
    temporal_client: Client, pool: Pool, database_url: str, tmp_path: Path
) -> None:
    requests = chat_requests(10)
    for r in requests[4:8]:
        r["body"]["messages"][0]["content"] += " __flaky"  # a 500 in round 0, fine in round 1
    for r in requests[8:]:
        r["custom_id"] += "__fail_500"  # a 500 in every round
    # 200 ms a request: round 1's six requests keep its batch running for over a second
    config = emulator_config(ms_per_request=200.0)
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
            max_rounds=3,
            handlers=[webhook(receiver.url)],
        )
        held: list[str] = []

        async def round_1_running() -> bool:
            if not held:
                pbid = await pool.fetchval(
                    "SELECT provider_batch_id FROM provider_batches WHERE batch_id = $1 AND round = 1",
                    batch_id,
                )
                if pbid is None or await phase_of(stack, pbid) not in ("validating", "in_progress"):
                    return False
                # frozen where it is until the new worker polls it
                await stack.admin("POST", f"/batches/{pbid}/hold")
                held.append(pbid)
            return True

        await kill_when(stack, [handle], round_1_running, what="round 1's batch running", timeout=40)
        await stack.admin("POST", f"/batches/{held[0]}/release")
        summary = await asyncio.wait_for(handle.result(), 90)
        stats = await stack.admin("GET", "/stats")
        assert stack.workers.killed == 1
        assert summary.status == "completed", summary
        assert (summary.counts.succeeded, summary.counts.failed, summary.counts.retried) == (8, 2, 6)
        assert len(summary.provider_batch_ids) == 3 and stats["batches_created"]["openai"] == 3
        rows = await rows_by_request(stack, batch_id)
        for r in requests[:4]:
            assert rows[r["custom_id"]] == [(0, "succeeded")]
        for r in requests[4:8]:
            assert rows[r["custom_id"]] == [(0, "failed"), (1, "succeeded")]
        for r in requests[8:]:
            assert rows[r["custom_id"]] == [(0, "failed"), (1, "failed"), (2, "failed")]
        await assert_one_outcome_each(stack, batch_id)
        assert len(receiver.accepted) == 1 and receiver.accepted[0].body["counts"]["retried"] == 6
        assert summary.handlers[0].status == "succeeded"


def same_size_requests(n: int, prefix: str) -> list[dict[str, object]]:
    """Requests whose staged bodies all have one size (the line numbers have as many digits)."""
    requests = chat_requests(n, prefix=prefix)
    for i, r in enumerate(requests):
        r["body"]["messages"][0]["content"] = f"question number {i:03d}"
    return requests


def staged_size(request: dict[str, object]) -> int:
    """The bytes a request counts for against `max_bytes_per_shard`, as staging measures them."""
    staged = RequestsValidator("openai", ENDPOINT, None).feed(1, request)
    assert staged is not None
    return staged.byte_size


async def test_shards_split_at_and_one_past_each_cap_with_a_kill_between_submissions(
    temporal_client: Client, pool: Pool, database_url: str, tmp_path: Path
) -> None:
    line = staged_size(same_size_requests(1, "x")[0])
    per_shard = 1100 // line + 1  # the byte cap must be at least 1 KiB
    byte_cap = per_shard * line
    # (requests, caps, shard sizes expected): exactly at a cap is one shard, one more is two
    cases = {
        "at-count": (same_size_requests(5, "a"), {"max_requests_per_shard": 5}, [5]),
        "past-count": (same_size_requests(6, "b"), {"max_requests_per_shard": 5}, [5, 1]),
        "at-bytes": (same_size_requests(per_shard, "c"), {"max_bytes_per_shard": byte_cap}, [per_shard]),
        "past-bytes": (
            same_size_requests(per_shard + 1, "d"),
            {"max_bytes_per_shard": byte_cap},
            [per_shard, 1],
        ),
    }
    config = emulator_config(ms_per_request=20.0)
    async with process_stack(
        temporal_client, pool, database_url, config, log_dir=tmp_path, sticky_timeout_seconds=STICKY_SECONDS
    ) as stack:
        ids = {name: new_id() for name in cases}

        async def start(name: str) -> SummaryHandle:
            requests, caps, _ = cases[name]
            handle = await stack.start(
                batch_id=ids[name], provider="openai", endpoint=ENDPOINT, requests=requests, **caps
            )
            assert isinstance(handle, SummaryHandle)
            return handle

        async def recorded(names: tuple[str, ...]) -> int:
            return int(
                await pool.fetchval(
                    """SELECT count(*) FROM provider_batches
                        WHERE batch_id = ANY($1) AND provider_batch_id IS NOT NULL""",
                    [ids[n] for n in names],
                )
            )

        # the one-shard batches submitted first, so that the lost creates below are the others'
        handles = {name: await start(name) for name in ("at-count", "at-bytes")}
        await eventually(
            lambda: recorded(("at-count", "at-bytes")), lambda n: n == 2, what="one-shard submits"
        )
        # each two-shard batch's first create reaches the provider but its answer is lost: the
        # provider holds a batch the store does not know of, and the other shard is not submitted
        await stack.fault(
            fault="lose_create_response", provider="openai", operation="batches.create", count=2
        )
        handles |= {name: await start(name) for name in ("past-count", "past-bytes")}

        async def between_submissions() -> bool:
            stats = await stack.admin("GET", "/stats")
            return (
                stats["faults_fired"].get("lose_create_response", 0) == 2
                and await recorded(("past-count", "past-bytes")) < 4
            )

        await kill_when(
            stack, list(handles.values()), between_submissions, what="a create lost, a shard unsubmitted"
        )
        summaries = {name: await asyncio.wait_for(h.result(), 90) for name, h in handles.items()}
        assert stack.workers.killed == 1
        for name, (requests, _, sizes) in cases.items():
            summary = summaries[name]
            assert summary.status == "completed" and summary.counts.succeeded == len(requests), name
            assert len(summary.provider_batch_ids) == len(sizes), name
            at_provider = emulator_batches_of(stack, workflow_id_for(ids[name]))
            assert sorted(len(b.items) for b in at_provider) == sorted(sizes), name
            held = custom_ids_per_batch(at_provider)
            assert held == {r["custom_id"]: 1 for r in requests}, name  # each in exactly one
            uploads = [f for f in stack.emulator.state.openai_files.files.values() if ids[name] in f.filename]
            assert len(uploads) == len(sizes), name  # one upload per shard, a retried create reuses it
            await assert_one_outcome_each(stack, ids[name])

"""Shards wait for room in their provider account's queue, in priority order, and give it back
when their provider batch ends; a cancel while waiting sends nothing."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from rich.console import Console
from temporalio.client import Client, WorkflowHandle

from durabatch.cli.console import status_table
from durabatch.models import BatchSummary, StatusQuery
from durabatch.store.pool import Pool
from tests.helpers import eventually
from tests.stack import Stack, chat_requests, emulator_config, worker_stack


@pytest.fixture(scope="module")
async def one_batch_account(
    temporal_client: Client, pool: Pool, database_url: str, api_keys: None
) -> AsyncIterator[Stack]:
    async with worker_stack(
        temporal_client, pool, database_url, queue_prefix="adm", openai_max_concurrent_batches=1
    ) as stack:
        yield stack


def new_id() -> str:
    return uuid.uuid4().hex[:10]


async def status_of(handle: WorkflowHandle[Any, Any]) -> StatusQuery:
    return await handle.query("status", result_type=StatusQuery)


async def until(handle: WorkflowHandle[Any, Any], check: Any, timeout: float = 30) -> StatusQuery:
    return await eventually(lambda: status_of(handle), check, timeout, what="batch status")


async def start(stack: Stack, **fields: Any) -> WorkflowHandle[Any, BatchSummary]:
    return await stack.start(
        batch_id=new_id(),
        provider="openai",
        endpoint="/v1/chat/completions",
        requests=chat_requests(2),
        **fields,
    )


async def held_first(stack: Stack) -> tuple[WorkflowHandle[Any, BatchSummary], str]:
    """A batch whose provider batch is held running: it holds the account's only slot."""
    first = await start(stack)
    st = await until(first, lambda s: bool(s.shards and s.shards[0].provider_batch_id))
    provider_batch_id = st.shards[0].provider_batch_id
    assert provider_batch_id
    await stack.admin("POST", f"/batches/{provider_batch_id}/hold")
    return first, provider_batch_id


async def test_a_shard_waits_for_room_and_is_sent_when_the_first_batch_ends(one_batch_account: Stack) -> None:
    stack = one_batch_account
    first, held = await held_first(stack)
    created = (await stack.admin("GET", "/stats"))["batches_created"]["openai"]
    second = await start(stack)
    st = await until(second, lambda s: bool(s.shards) and s.shards[0].state == "waiting_admission")
    assert "1 of 1 concurrent batches running" in (st.shards[0].admission_reason or "")
    console = Console(record=True, width=200)
    console.print(status_table(st))  # what `durabatch status` prints
    printed = console.export_text()
    assert "shard 0" in printed and "concurrent batches running" in printed
    await asyncio.sleep(1.5)  # several polls of the first batch: the second still waits
    assert (await stack.admin("GET", "/stats"))["batches_created"]["openai"] == created
    await stack.admin("POST", f"/batches/{held}/release")
    for handle in (first, second):
        summary = await asyncio.wait_for(handle.result(), 60)
        assert summary.status == "completed" and summary.counts.succeeded == 2
    assert (await stack.admin("GET", "/stats"))["batches_created"]["openai"] == created + 1


async def test_higher_priority_is_admitted_first(one_batch_account: Stack) -> None:
    stack = one_batch_account
    first, held = await held_first(stack)
    low = await start(stack, priority=5)
    await until(low, lambda s: bool(s.shards) and s.shards[0].state == "waiting_admission")
    high = await start(stack, priority=1)
    st = await until(high, lambda s: bool(s.shards) and s.shards[0].state == "waiting_admission")
    assert "waiting for admission" in (st.shards[0].admission_reason or "")
    await stack.admin("POST", f"/batches/{held}/release")
    # the high-priority batch gets the slot first; the low one is sent only after it ends
    high_sent = await until(high, lambda s: bool(s.shards[0].provider_batch_id))
    low_now = await status_of(low)
    assert low_now.shards[0].state == "waiting_admission", (high_sent, low_now)
    for handle in (first, high, low):
        assert (await asyncio.wait_for(handle.result(), 60)).status == "completed"


async def test_a_cancel_while_waiting_sends_nothing_and_frees_the_place(one_batch_account: Stack) -> None:
    stack = one_batch_account
    first, held = await held_first(stack)
    waiting = await start(stack)
    await until(waiting, lambda s: bool(s.shards) and s.shards[0].state == "waiting_admission")
    created = (await stack.admin("GET", "/stats"))["batches_created"]["openai"]
    await waiting.signal("cancel", {"reason": "changed my mind"})
    summary = await asyncio.wait_for(waiting.result(), 30)
    assert (
        summary.status == "cancelled" and summary.counts.cancelled == 2 and summary.provider_batch_ids == []
    )
    await stack.admin("POST", f"/batches/{held}/release")
    assert (await asyncio.wait_for(first.result(), 60)).status == "completed"
    after = await start(stack)  # the cancelled one holds no room: the next batch runs at once
    assert (await asyncio.wait_for(after.result(), 60)).status == "completed"
    assert (await stack.admin("GET", "/stats"))["batches_created"]["openai"] == created + 1


@pytest.fixture(scope="module")
async def two_batch_account(
    temporal_client: Client, pool: Pool, database_url: str, api_keys: None
) -> AsyncIterator[Stack]:
    async with worker_stack(
        temporal_client, pool, database_url, queue_prefix="adm2", openai_max_concurrent_batches=2
    ) as stack:
        yield stack


async def test_the_tenant_holding_less_room_goes_first(two_batch_account: Stack) -> None:
    """Tenant a holds both slots and queues a third batch first; tenant b's batch, queued later,
    gets the first free slot, because a already holds one."""
    stack = two_batch_account
    held = []
    for _ in range(2):
        handle = await start(stack, tenant="a")
        st = await until(handle, lambda s: bool(s.shards and s.shards[0].provider_batch_id))
        assert st.shards[0].provider_batch_id
        await stack.admin("POST", f"/batches/{st.shards[0].provider_batch_id}/hold")
        held.append((handle, st.shards[0].provider_batch_id))
    a_third = await start(stack, tenant="a")
    await until(a_third, lambda s: bool(s.shards) and s.shards[0].state == "waiting_admission")
    b_first = await start(stack, tenant="b")
    await until(b_first, lambda s: bool(s.shards) and s.shards[0].state == "waiting_admission")
    await stack.admin("POST", f"/batches/{held[0][1]}/release")
    await until(b_first, lambda s: bool(s.shards[0].provider_batch_id))
    assert (await status_of(a_third)).shards[0].state == "waiting_admission"
    await stack.admin("POST", f"/batches/{held[1][1]}/release")
    for handle in (held[0][0], held[1][0], b_first, a_third):
        assert (await asyncio.wait_for(handle.result(), 60)).status == "completed"


@pytest.fixture(scope="module")
async def two_slots_nothing_ends(
    temporal_client: Client, pool: Pool, database_url: str, api_keys: None
) -> AsyncIterator[Stack]:
    """Two batches at a time, and a provider batch validates for an hour: the test ends each one."""
    async with worker_stack(
        temporal_client,
        pool,
        database_url,
        emulator_config(validating_seconds=3600.0),
        queue_prefix="adm3",
        openai_max_concurrent_batches=2,
    ) as stack:
        yield stack


async def test_two_tenants_two_priorities_priority_first_then_the_tenant_holding_less(
    two_slots_nothing_ends: Stack,
) -> None:
    """Tenant a holds both slots. Queued in this order: a low, b low, a high, b high. Each time a
    slot frees, the higher priority goes first, and within it the tenant holding less room, though
    a asked first at both priorities: b high, a high, b low, a low."""
    stack = two_slots_nothing_ends

    async def sent(handle: WorkflowHandle[Any, BatchSummary]) -> str:
        st = await until(handle, lambda s: bool(s.shards and s.shards[0].provider_batch_id))
        return str(st.shards[0].provider_batch_id)

    async def end(handle: WorkflowHandle[Any, BatchSummary]) -> None:
        await stack.admin("POST", f"/batches/{await sent(handle)}/advance", json={"to": "completed"})

    holders = [await start(stack, tenant="a") for _ in range(2)]
    for handle in holders:
        await sent(handle)
    queued: dict[str, WorkflowHandle[Any, BatchSummary]] = {}
    for name, tenant, priority in (
        ("a low", "a", 5),
        ("b low", "b", 5),
        ("a high", "a", 1),
        ("b high", "b", 1),
    ):
        queued[name] = await start(stack, tenant=tenant, priority=priority)
        await until(queued[name], lambda s: bool(s.shards) and s.shards[0].state == "waiting_admission")

    order: list[str] = []
    for ended in (holders[0], holders[1], queued["b high"], queued["a high"]):
        await end(ended)
        waiting = {name: h for name, h in queued.items() if name not in order}

        async def newly_sent(waiting: dict[str, WorkflowHandle[Any, BatchSummary]] = waiting) -> list[str]:
            return [n for n, h in waiting.items() if (await status_of(h)).shards[0].provider_batch_id]

        # one slot came free, and one waiting batch takes it
        (taken,) = await eventually(newly_sent, bool, what="a waiting batch sent")
        order.append(taken)
    assert order == ["b high", "a high", "b low", "a low"]
    for name in ("b low", "a low"):
        await end(queued[name])
    for handle in [*holders, *queued.values()]:
        assert (await asyncio.wait_for(handle.result(), 60)).status == "completed"

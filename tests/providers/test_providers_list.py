"""`list_batches` of every provider client against the emulator over real HTTP: the account's
batches newest first with the state `status()` gives them, paged, bounded, and cut at `since`."""

from __future__ import annotations

import time

import httpx
import pytest

from durabatch.emulator import RunningEmulator
from durabatch.providers.base import BatchProvider, ProviderBatchRef, ProviderBatchSummary
from tests.providers.test_providers_emulator import PROVIDERS, client_for, emu, http, shard_for, wait_terminal

__all__ = ["emu", "http"]  # the fixtures, imported to be used here

pytestmark = pytest.mark.filterwarnings("ignore::aiohttp.web_exceptions.NotAppKeyWarning")


async def listed(
    client: BatchProvider, since: float | None = None, max_pages: int = 50
) -> list[ProviderBatchSummary]:
    return [summary async for summary in client.list_batches(since, max_pages)]


async def submit_many(client: BatchProvider, provider: str, n: int) -> list[ProviderBatchRef]:
    return [await client.submit(shard_for(provider, 1, tag=f"t{i}", prefix=f"q{i}")) for i in range(n)]


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_lists_the_accounts_batches_newest_first_as_status_maps_them(
    provider: str, emu: RunningEmulator, http: httpx.AsyncClient
) -> None:
    client = client_for(provider, emu, http)
    refs = await submit_many(client, provider, 3)
    ended = await wait_terminal(client, refs[0])
    summaries = await listed(client)
    assert [s.provider_batch_id for s in summaries] == [r.provider_batch_id for r in reversed(refs)]
    first = summaries[-1]
    assert (first.state, first.provider_status) == (ended.state, ended.provider_status)
    assert first.created_at is not None and abs(first.created_at - time.time()) < 60
    # nothing was created after `since`: the list stops at its first page
    assert await listed(client, since=time.time() + 3600) == []


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_pages_through_more_than_one_page_and_stops_at_max_pages(
    provider: str, emu: RunningEmulator, http: httpx.AsyncClient
) -> None:
    client = client_for(provider, emu, http)
    refs = await submit_many(client, provider, 130)
    everything = await listed(client)
    assert [s.provider_batch_id for s in everything] == [r.provider_batch_id for r in reversed(refs)]
    assert len(await listed(client, max_pages=1)) == 100

"""The worker's workflow cache follows DURABATCH_MAX_CACHED_WORKFLOWS: a fleet larger than the
cache replays each batch's history on every wake-up (docs/benchmarks.md, "A fleet of live batches")."""

from __future__ import annotations

import httpx
from temporalio.client import Client

from activities import ActivityDeps
from durabatch.providers.registry import build_provider
from durabatch.service import worker_for
from durabatch.settings import Settings, load_settings
from durabatch.store.pool import Pool


def test_the_setting_is_read_and_defaults_to_the_sdks_cache() -> None:
    assert load_settings({}).max_cached_workflows == 1000
    assert load_settings({"DURABATCH_MAX_CACHED_WORKFLOWS": "12000"}).max_cached_workflows == 12000


async def test_the_worker_is_built_with_the_settings_cache_size(temporal_client: Client, pool: Pool) -> None:
    async with httpx.AsyncClient() as http:
        for size in (7, 12000):
            settings = Settings(task_queue=f"cache-size-{size}", max_cached_workflows=size)
            deps = ActivityDeps(pool=pool, settings=settings, http=http, provider_factory=build_provider)
            assert worker_for(temporal_client, settings, deps).config()["max_cached_workflows"] == size

"""Activities run one at a time in Temporal's ActivityEnvironment (the real activity context:
info, heartbeats, cancellation) against the real PostgreSQL of the module and an emulator over
HTTP, with no worker or workflow around them: what a retry of one activity does is seen alone."""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from temporalio.testing import ActivityEnvironment

from activities import ActivityDeps
from durabatch.activity_api import ClaimInput, StageInput
from durabatch.emulator import run_emulator
from durabatch.emulator.server import RunningEmulator
from durabatch.providers.registry import build_provider
from durabatch.settings import Settings
from durabatch.store.pool import Pool
from tests.stack import emulator_config


@dataclass
class Rig:
    """What the activity tests share: the deps a worker would build, and the emulator behind them."""

    deps: ActivityDeps
    emulator: RunningEmulator

    @property
    def pool(self) -> Pool:
        return self.deps.pool

    async def admin(self, method: str, path: str, **kwargs: Any) -> Any:
        response = await self.deps.http.request(method, f"{self.emulator.url}/_emulator{path}", **kwargs)
        response.raise_for_status()
        return response.json()


@pytest.fixture(scope="module")
async def rig(pool: Pool, database_url: str, api_keys: None) -> AsyncIterator[Rig]:
    async with run_emulator(emulator_config()) as emu, httpx.AsyncClient(timeout=30) as http:
        settings = Settings(
            task_queue="activities-unused",
            database_url=database_url,
            openai_base_url=f"{emu.url}/v1",
            anthropic_base_url=emu.url,
            gemini_base_url=emu.url,
            requests_roots=tempfile.gettempdir(),
        )
        deps = ActivityDeps(pool=pool, settings=settings, http=http, provider_factory=build_provider)
        yield Rig(deps=deps, emulator=emu)


@pytest.fixture
def env() -> ActivityEnvironment:
    return ActivityEnvironment()


def new_id() -> str:
    return uuid.uuid4().hex[:10]


def chat_lines(n: int, prefix: str = "r") -> list[dict[str, Any]]:
    return [
        {
            "custom_id": f"{prefix}{i}",
            "method": "POST",
            "url": "/v1/chat/completions",
            "body": {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": f"question {i}"}]},
        }
        for i in range(n)
    ]


def claim_input(batch_id: str, run: str) -> ClaimInput:
    return ClaimInput(
        batch_id=batch_id,
        workflow_id=f"batch-{batch_id}",
        owner_run_id=run,
        provider="openai",
        endpoint="/v1/chat/completions",
    )


def stage_input(batch_id: str, n: int = 0, **fields: Any) -> StageInput:
    values: dict[str, Any] = {
        "batch_id": batch_id,
        "workflow_id": f"batch-{batch_id}",
        "provider": "openai",
        "endpoint": "/v1/chat/completions",
        "requests": chat_lines(n) if n else None,
        **fields,
    }
    return StageInput(**values)

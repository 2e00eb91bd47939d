"""Helpers for provider client tests: a scripted httpx.MockTransport and shard builders."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

import httpx
import pytest

from durabatch.providers.base import RequestLine, ShardSubmission

SECRET = "sk-test-SECRET-key-0123456789"


def make_shard(
    tag: str = "db_b1_s0_r0",
    endpoint: str = "/v1/chat/completions",
    bodies: list[tuple[str, dict[str, Any]]] | None = None,
    model: str | None = "gpt-4o-mini",
    attempt_started_at: float = 0.0,
) -> ShardSubmission:
    items = bodies if bodies is not None else [(f"r{i}", {"model": model, "messages": []}) for i in range(3)]

    async def requests() -> AsyncIterator[RequestLine]:
        for custom_id, body in items:
            yield RequestLine(custom_id=custom_id, body=body)

    return ShardSubmission(
        tag=tag,
        batch_id="b1",
        shard=0,
        round=0,
        endpoint=endpoint,
        model=model,
        request_count=len(items),
        byte_size=0,
        requests=requests,
        attempt_started_at=attempt_started_at,
    )


def mock_client(
    handler: Callable[[httpx.Request], httpx.Response]
    | Callable[[httpx.Request], Coroutine[None, None, httpx.Response]],
) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.MockTransport(handler))


@pytest.fixture
def secret() -> str:
    return SECRET

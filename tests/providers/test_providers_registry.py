"""build_provider: names, keys read at call time, missing key errors."""

from __future__ import annotations

import httpx
import pytest

from durabatch.providers import BatchProvider, build_provider, errors
from durabatch.providers.base import ProviderBatchRef
from durabatch.settings import Settings


@pytest.mark.parametrize("name", ["openai", "anthropic", "gemini"])
async def test_build_each(name: str) -> None:
    async with httpx.AsyncClient() as http:
        provider = build_provider(name, Settings(), http)
        assert isinstance(provider, BatchProvider)
        assert provider.name == name and provider.limits.endpoints


async def test_unknown_name() -> None:
    async with httpx.AsyncClient() as http:
        with pytest.raises(ValueError, match="'mistral'"):
            build_provider("mistral", Settings(), http)


async def test_key_read_at_call_time(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    seen = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers["authorization"])
        return httpx.Response(200, json={"id": "b", "status": "in_progress", "request_counts": {}})

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http:
        provider = build_provider("openai", Settings(), http)  # no key yet: fine
        ref = ProviderBatchRef(provider="openai", provider_batch_id="b")
        with pytest.raises(errors.AuthenticationFailed, match="OPENAI_API_KEY is not set") as info:
            await provider.status(ref)
        assert not info.value.retryable
        monkeypatch.setenv("OPENAI_API_KEY", "sk-one")
        await provider.status(ref)
        monkeypatch.setenv("OPENAI_API_KEY", "sk-two")
        await provider.status(ref)
    assert seen == ["Bearer sk-one", "Bearer sk-two"]

"""Build a provider client by name.

API keys are never read here: each client gets a callable that reads
``os.environ[API_KEY_ENV[name]]`` at the moment of each call, so a worker picks up a rotated key
without restarting and no key is held in an object that could be logged or serialised. A missing
or blank key raises `AuthenticationFailed` naming the variable, never a value.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import httpx

from durabatch.providers.base import BatchProvider
from durabatch.providers.errors import AuthenticationFailed
from durabatch.providers.formats import KNOWN_PROVIDERS
from durabatch.settings import API_KEY_ENV, Settings

__all__ = ["build_provider", "env_api_key"]


def env_api_key(provider: str) -> Callable[[], str]:
    """A callable returning the provider's key from the environment at call time."""
    variable = API_KEY_ENV[provider]

    def read() -> str:
        value = os.environ.get(variable, "").strip()
        if not value:
            raise AuthenticationFailed(f"{variable} is not set", provider=provider)
        return value

    return read


def build_provider(name: str, settings: Settings, http: httpx.AsyncClient) -> BatchProvider:
    """The client for provider `name`, talking through the shared `http` client."""
    if name not in KNOWN_PROVIDERS or name not in API_KEY_ENV:
        raise ValueError(f"unknown provider {name!r}; known: {', '.join(sorted(KNOWN_PROVIDERS))}")
    base_url = settings.base_url(name)
    key = env_api_key(name)
    if name == "openai":
        from durabatch.providers.openai import OpenAIProvider

        return OpenAIProvider(http, base_url, key)
    if name == "anthropic":
        from durabatch.providers.anthropic import AnthropicProvider

        return AnthropicProvider(http, base_url, key)
    from durabatch.providers.gemini import GeminiProvider

    return GeminiProvider(http, base_url, key)

"""What activities need, built once by worker.py and passed in: nothing connects at import time."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import httpx

from durabatch.providers.base import BatchProvider
from durabatch.settings import Settings
from durabatch.store.pool import Pool
from durabatch.telemetry.metrics import DurabatchMetrics

__all__ = ["ActivityDeps"]


@dataclass
class ActivityDeps:
    pool: Pool
    settings: Settings
    #: one pooled client shared by every activity (providers, webhooks, request URIs)
    http: httpx.AsyncClient
    #: provider name -> client; built lazily so a provider without a key only fails when used
    provider_factory: Callable[[str, Settings, httpx.AsyncClient], BatchProvider]
    #: durabatch's own metrics (no-op unless worker.py built them from a Prometheus runtime)
    metrics: DurabatchMetrics = field(default_factory=DurabatchMetrics)
    _providers: dict[str, BatchProvider] = field(default_factory=dict)

    def provider(self, name: str) -> BatchProvider:
        if name not in self._providers:
            self._providers[name] = self.provider_factory(name, self.settings, self.http)
        return self._providers[name]

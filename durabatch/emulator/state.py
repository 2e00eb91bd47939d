"""Everything the emulator holds in memory: batches, files, faults, counters."""

from __future__ import annotations

import asyncio
import secrets
import string
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from durabatch.emulator.batches import Batch, RequestError
from durabatch.emulator.clock import Clock
from durabatch.emulator.config import EmulatorConfig
from durabatch.emulator.content import Provider, request_text
from durabatch.emulator.faults import FaultRegistry
from durabatch.emulator.files import FileStore
from durabatch.emulator.ratelimit import RealtimeLimiter
from durabatch.emulator.timeline import Timeline

__all__ = ["FLAKY_MARKER", "STATE_KEY", "EmulatorState", "RealtimeCall", "Stats", "new_id"]

#: a request whose text holds this fails with a 500 the first time it runs, then succeeds
FLAKY_MARKER = "__flaky"

_B62 = string.ascii_letters + string.digits
_LOWER = string.ascii_lowercase + string.digits


def new_id(kind: str) -> str:
    """Ids in each provider's style."""
    if kind == "openai_batch":
        return "batch_" + secrets.token_hex(16)
    if kind == "openai_file":
        return "file-" + "".join(secrets.choice(_B62) for _ in range(22))
    if kind == "anthropic_batch":
        return "msgbatch_01" + "".join(secrets.choice(_B62) for _ in range(22))
    if kind == "gemini_batch":
        return "batches/" + "".join(secrets.choice(_LOWER) for _ in range(36))
    if kind == "gemini_file":
        return "".join(secrets.choice(_LOWER) for _ in range(12))
    raise ValueError(kind)


@dataclass(frozen=True)
class RealtimeCall:
    """One call of a real-time endpoint that passed validation: when (the emulator's clock), how
    it was answered (as in `Stats.realtime`) and the request's text, which names the request (a
    real-time call carries no custom_id)."""

    provider: str
    at: float
    answer: str
    text: str
    #: a refused call: the seconds its Retry-After asked the client to wait
    retry_after: float | None = None


@dataclass
class Stats:
    batches_created: Counter[str] = field(default_factory=Counter)
    batches_by_tag: dict[str, Counter[str]] = field(default_factory=dict)
    downloads: Counter[str] = field(default_factory=Counter)
    requests: Counter[str] = field(default_factory=Counter)
    faults_fired: Counter[str] = field(default_factory=Counter)
    #: real-time calls by `provider:answer`: `ok` (answered 200), `rate_limited` (429),
    #: `flaky` (the first run of a `__flaky` request), `error` (any other refusal)
    realtime: Counter[str] = field(default_factory=Counter)
    #: every real-time call that reached the rate limit, in arrival order: what a test reads to
    #: tell the rate achieved and which requests ran more than once
    realtime_calls: list[RealtimeCall] = field(default_factory=list)
    #: OpenAI, per model: the most prompt tokens ever enqueued at once (unfinished batches, the
    #: one just accepted included), and the creates the enqueued-token limit refused
    enqueued_tokens_high_water: Counter[str] = field(default_factory=Counter)
    token_limit_refusals: Counter[str] = field(default_factory=Counter)
    #: calls being answered now, and the most answered at once, by `provider:operation`: proof
    #: that a client's calls overlapped (e.g. the creates of a batch's shards)
    in_flight: Counter[str] = field(default_factory=Counter)
    peak_in_flight: Counter[str] = field(default_factory=Counter)

    def call_started(self, name: str) -> None:
        self.in_flight[name] += 1
        self.peak_in_flight[name] = max(self.peak_in_flight[name], self.in_flight[name])

    def call_ended(self, name: str) -> None:
        self.in_flight[name] -= 1

    #: status reads (GET of one batch) by provider batch id: a client's polls of each batch,
    #: counted where they land, so a benchmark need not ask a busy worker how often it polled
    status_reads: Counter[str] = field(default_factory=Counter)

    def as_json(self) -> dict[str, Any]:
        return {
            "batches_created": dict(self.batches_created),
            "batches_by_tag": {p: dict(c) for p, c in self.batches_by_tag.items()},
            "downloads": dict(self.downloads),
            "requests": dict(self.requests),
            "faults_fired": dict(self.faults_fired),
            "realtime": dict(self.realtime),
            "enqueued_tokens_high_water": dict(self.enqueued_tokens_high_water),
            "token_limit_refusals": dict(self.token_limit_refusals),
            "peak_in_flight": dict(self.peak_in_flight),
            "status_reads": dict(self.status_reads),
        }


class EmulatorState:
    """In-process view of the emulator, shared by every route (and by tests via `emu.state`)."""

    def __init__(self, config: EmulatorConfig, clock: Clock | None = None) -> None:
        self.config = config
        self.clock = clock or Clock()
        self.faults = FaultRegistry()
        self.stats = Stats()
        self.openai_files = FileStore()
        self.gemini_files = FileStore()
        self.batches: dict[str, Batch] = {}
        #: creation order per provider, for newest-first listing
        self.order: dict[str, list[str]] = {"openai": [], "anthropic": [], "gemini": []}
        #: Gemini resumable uploads in progress: upload id -> (metadata, received bytes)
        self.uploads: dict[str, tuple[dict[str, Any], bytearray]] = {}
        #: the real-time endpoints' rate-limit windows
        self.realtime_limiter = RealtimeLimiter()
        #: `__flaky` requests that have already failed once: batch custom_ids (as `provider:id`)
        #: and real-time request texts (as `provider:text:<text>`)
        self.flaky_failed: set[str] = set()
        #: set on every change worth saving; the on-disk copy (persist.py, with a state_dir) follows
        self.changed = asyncio.Event()

    def flaky_fails(self, key: str) -> bool:
        """Whether a `__flaky` request keyed `key` fails now: only the first time it is run."""
        if key in self.flaky_failed:
            return False
        self.flaky_failed.add(key)
        self.touch()
        return True

    @property
    def api_keys(self) -> frozenset[str]:
        return frozenset(self.config.api_keys)

    def touch(self) -> None:
        """Something to save has changed (a no-op without a state dir: nobody waits on it)."""
        self.changed.set()

    def now(self) -> float:
        return self.clock.now()

    def new_timeline(self, n: int, created_at: float) -> Timeline:
        c = self.config
        return Timeline(
            created_at=created_at,
            n=n,
            validating_s=c.validating_seconds,
            per_request_s=c.ms_per_request / 1000.0,
            finalizing_s=c.finalizing_seconds,
            expire_after_s=c.expire_after_seconds,
        )

    def add_batch(self, batch: Batch, tags: list[str]) -> None:
        # decided here, once per batch, so every download of its results agrees; a batch that
        # fails validation runs nothing, so its `__flaky` requests have not failed yet
        for item in [] if batch.timeline.fail_validation else batch.items:
            if (
                item.error is None
                and FLAKY_MARKER in request_text(batch.provider, item.body)
                and self.flaky_fails(f"{batch.provider}:{item.cid}")
            ):
                item.error = RequestError.for_status(500)
        batch.index()
        self.batches[batch.id] = batch
        self.order[batch.provider].append(batch.id)
        self.stats.batches_created[batch.provider] += 1
        by_tag = self.stats.batches_by_tag.setdefault(batch.provider, Counter())
        for t in tags:
            by_tag[t] += 1

    def get_batch(self, provider: Provider, batch_id: str) -> Batch | None:
        b = self.batches.get(batch_id)
        if b is None or b.provider != provider or b.extra.get("deleted"):
            return None
        return b

    def listing(self, provider: Provider) -> list[str]:
        """Ids newest first, deleted ones left out."""
        return [i for i in reversed(self.order[provider]) if not self.batches[i].extra.get("deleted")]

    def reset(self) -> None:
        self.faults.clear()
        self.stats = Stats()
        self.openai_files.clear()
        self.gemini_files.clear()
        self.batches.clear()
        for v in self.order.values():
            v.clear()
        self.uploads.clear()
        self.realtime_limiter.clear()
        self.flaky_failed.clear()
        self.clock.reset()


STATE_KEY = web.AppKey("emulator_state", EmulatorState)

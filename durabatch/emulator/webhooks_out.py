"""Batch-ended webhooks from the emulator, as OpenAI and Gemini send them.

With `EmulatorConfig.webhook_url` set (`{provider}` in it is replaced by `openai` or `gemini`, so
one setting serves a receiver with a path per provider), a watcher looks at the unfinished OpenAI and Gemini batches
a few times a second and, when one ends, POSTs one event signed in the Standard Webhooks scheme
(`webhook-id`, `webhook-timestamp`, `webhook-signature: v1,<base64 HMAC-SHA256>`):
- OpenAI: `{"id": "evt_...", "object": "event", "type": "batch.completed" | "batch.failed" |
  "batch.expired" | "batch.cancelled", "created_at": ..., "data": {"id": "batch_..."}}`;
- Gemini: `{"id": ..., "type": "batch.succeeded" | "batch.failed" | "batch.expired", "created_at": ...,
  "data": {"name": "batches/..."}}` (Gemini sends no event for a cancelled batch).
Anthropic has no batch webhooks, so its batches send none.

Deliveries are at least once, like the providers': a non-2xx answer or a connection error is
retried (a few times, a second apart), and every copy of one event has the same `webhook-id`.
The hostile knobs drop every event, delay each, or send extra copies (`webhook_drop`,
`webhook_delay_seconds`, `webhook_duplicates`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import aiohttp
from aiohttp import web
from standardwebhooks.webhooks import Webhook

from durabatch.emulator.batches import Batch
from durabatch.emulator.state import STATE_KEY, EmulatorState
from durabatch.emulator.timeline import Phase

__all__ = ["event_for", "webhook_watcher"]

log = logging.getLogger("durabatch.emulator.webhooks")

_WATCH_INTERVAL_S = 0.1
_ATTEMPTS = 5
_RETRY_DELAY_S = 1.0
_GEMINI_TYPES = {
    Phase.COMPLETED: "batch.succeeded",
    Phase.FAILED: "batch.failed",
    Phase.EXPIRED: "batch.expired",
}


def event_for(batch: Batch, now: float) -> dict[str, Any] | None:
    """The event a provider sends when `batch` ends, or None when it sends none."""
    phase = batch.timeline.phase
    event_id = "evt_" + secrets.token_hex(12)
    if batch.provider == "openai":
        return {
            "id": event_id,
            "object": "event",
            "type": f"batch.{phase.value}",
            "created_at": int(now),
            "data": {"id": batch.id},
        }
    if batch.provider == "gemini" and phase in _GEMINI_TYPES:
        return {
            "id": event_id,
            "type": _GEMINI_TYPES[phase],
            "created_at": int(now),
            "data": {"name": batch.id},
        }
    return None


async def _deliver(session: aiohttp.ClientSession, state: EmulatorState, event: dict[str, Any]) -> None:
    config = state.config
    assert config.webhook_url and config.webhook_secret
    signer = Webhook(config.webhook_secret)
    body = json.dumps(event["body"]).encode()
    if config.webhook_delay_seconds > 0:
        await asyncio.sleep(config.webhook_delay_seconds)
    for copy in range(1 + max(0, config.webhook_duplicates)):
        for attempt in range(_ATTEMPTS):
            sent_at = datetime.now(UTC)
            headers = {
                "content-type": "application/json",
                "webhook-id": event["body"]["id"],
                "webhook-timestamp": str(int(sent_at.timestamp())),
                "webhook-signature": signer.sign(event["body"]["id"], sent_at, body),
            }
            try:
                url = config.webhook_url.replace("{provider}", event["provider"])
                async with session.post(url, data=body, headers=headers) as response:
                    if response.status < 300:
                        state.stats.requests["webhook_delivered"] += 1
                        break
                    state.stats.requests["webhook_refused"] += 1
            except (aiohttp.ClientError, TimeoutError) as exc:
                state.stats.requests["webhook_unreachable"] += 1
                log.info("webhook delivery failed (copy %d, attempt %d): %s", copy, attempt + 1, exc)
            await asyncio.sleep(_RETRY_DELAY_S)


async def _watch(state: EmulatorState) -> None:
    notified: set[str] = set()
    deliveries: set[asyncio.Task[None]] = set()
    timeout = aiohttp.ClientTimeout(total=10)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        try:
            await _watch_loop(state, session, notified, deliveries)
        finally:
            for task in deliveries:
                task.cancel()


async def _watch_loop(
    state: EmulatorState,
    session: aiohttp.ClientSession,
    notified: set[str],
    deliveries: set[asyncio.Task[None]],
) -> None:
    while True:
        now = state.now()
        for batch in list(state.batches.values()):
            if batch.id in notified or batch.provider == "anthropic" or batch.extra.get("end_event_sent"):
                continue
            batch.timeline.refresh(now)
            if not batch.timeline.terminal:
                continue
            notified.add(batch.id)
            # Kept on the batch too, so that an emulator restarted on its state dir (persist.py)
            # does not send the event again.
            batch.extra["end_event_sent"] = True
            state.touch()
            body = event_for(batch, now)
            event = None if body is None else {"provider": batch.provider, "body": body}
            if event is None or state.config.webhook_drop:
                state.stats.requests["webhook_dropped" if event else "webhook_none"] += 1
                continue
            task = asyncio.create_task(_deliver(session, state, event))
            deliveries.add(task)
            task.add_done_callback(deliveries.discard)
        await asyncio.sleep(_WATCH_INTERVAL_S)


async def webhook_watcher(app: web.Application) -> AsyncIterator[None]:
    """aiohttp cleanup context: runs the watcher while the app runs, when webhooks are configured."""
    state = app[STATE_KEY]
    if not state.config.webhook_url:
        yield
        return
    if not state.config.webhook_secret:
        raise ValueError("the emulator's webhook_url needs a webhook_secret to sign with")
    task = asyncio.create_task(_watch(state))
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

"""The webhook receiver as a plain ASGI application: `POST /hooks/openai`, `POST /hooks/gemini`.

Each delivery is verified (Standard Webhooks: HMAC signature over id, timestamp and body, the
timestamp within 5 minutes), deduplicated on its `webhook-id`, matched to a batch through the
store, and turned into the batch workflow's `provider_event` signal, which makes it poll at once.
The answer is 2xx only once the signal was accepted, so a provider redelivers what failed; an
event for a provider batch that is not one of ours, or of a type durabatch does not act on, is
acknowledged and ignored (it would be redelivered for days otherwise).

| answer | when |
|---|---|
| 200 `signalled` | the batch's workflow got the signal (the event is then recorded as handled) |
| 200 `duplicate` | this `webhook-id` was handled before |
| 200 `ignored` | not a batch-ended event, not our batch, or the batch has already ended |
| 401 | missing or bad signature, or a timestamp more than 5 minutes off |
| 400 | a verified body that is not JSON |
| 404 / 405 | another path, or webhooks of that provider not configured / not a POST |
| 413 | a body over 1 MiB |
| 503 | the store or Temporal did not answer: the provider retries later |

Secrets come from settings (`DURABATCH_OPENAI_WEBHOOK_SECRET`, `DURABATCH_GEMINI_WEBHOOK_SECRET`)
and never appear in answers or logs.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from durabatch.hooks.events import WEBHOOK_PROVIDERS, ProviderEvent, parse_event

__all__ = ["MAX_BODY_BYTES", "HookDeps", "HooksApp", "create_hooks_app"]

log = logging.getLogger("durabatch.hooks")

MAX_BODY_BYTES = 1 << 20

Scope = Mapping[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


@dataclass
class HookDeps:
    """What the app calls; `create_hooks_app` builds them from settings, tests may pass their own
    store and Temporal client through the same functions."""

    find_workflow: Callable[[str, str], Awaitable[tuple[str, str] | None]]
    already_handled: Callable[[str, str], Awaitable[bool]]
    record_handled: Callable[[ProviderEvent, str | None], Awaitable[None]]
    #: True once the workflow has the signal, False if the workflow has already closed
    signal: Callable[[str, dict[str, Any]], Awaitable[bool]]
    startup: Callable[[], Awaitable[None]] | None = None
    shutdown: Callable[[], Awaitable[None]] | None = None


class _Answer(Exception):
    def __init__(self, status: int, body: dict[str, Any]) -> None:
        self.status = status
        self.body = body


class HooksApp:
    """An ASGI 3 application (lifespan and http scopes)."""

    def __init__(self, secrets: Mapping[str, str | None], deps: HookDeps) -> None:
        self._verifiers = {p: Webhook(s) for p, s in secrets.items() if s and p in WEBHOOK_PROVIDERS}
        self._deps = deps

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        try:
            status, body = 200, await self._handle(scope, receive)
        except _Answer as answer:
            status, body = answer.status, answer.body
        data = json.dumps(body).encode()
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(data)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": data})

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    if self._deps.startup is not None:
                        await self._deps.startup()
                except Exception as exc:
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self._deps.shutdown is not None:
                    await self._deps.shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _handle(self, scope: Scope, receive: Receive) -> dict[str, Any]:
        path = str(scope.get("path", ""))
        provider = path.removeprefix("/hooks/").strip("/") if path.startswith("/hooks/") else ""
        if provider not in WEBHOOK_PROVIDERS:
            raise _Answer(404, {"error": f"no such path {path[:100]!r}; use /hooks/openai or /hooks/gemini"})
        if scope.get("method") != "POST":
            raise _Answer(405, {"error": "webhooks are POSTed"})
        verifier = self._verifiers.get(provider)
        if verifier is None:
            raise _Answer(404, {"error": f"{provider} webhooks are not configured on this server"})
        raw = await _read_body(receive)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        try:
            verifier.verify(raw, headers, json_parse=False)
        except WebhookVerificationError as exc:
            log.warning("webhook refused", extra={"provider": provider, "reason": str(exc)})
            raise _Answer(401, {"error": f"verification failed: {exc}"}) from None
        try:
            body = json.loads(raw)
        except ValueError:
            raise _Answer(400, {"error": "the body is not JSON"}) from None
        event = parse_event(provider, headers["webhook-id"], body)
        if event is None:
            return {"status": "ignored", "reason": "not a batch-ended event"}
        return await self._dispatch(event)

    async def _dispatch(self, event: ProviderEvent) -> dict[str, Any]:
        deps = self._deps
        try:
            if await deps.already_handled(event.provider, event.event_id):
                return {"status": "duplicate"}
            found = await deps.find_workflow(event.provider, event.provider_batch_id)
            if found is None:
                await deps.record_handled(event, None)
                return {"status": "ignored", "reason": "not a batch of this store"}
            batch_id, workflow_id = found
            payload = {
                "provider": event.provider,
                "event_id": event.event_id,
                "type": event.type,
                "provider_batch_id": event.provider_batch_id,
            }
            delivered = await deps.signal(workflow_id, payload)
            await deps.record_handled(event, batch_id)
        except Exception as exc:  # the store or Temporal: the provider redelivers later
            log.warning("webhook not handled, the provider will retry", extra={"error": type(exc).__name__})
            raise _Answer(503, {"error": "temporarily unavailable; retry"}) from None
        if not delivered:
            return {"status": "ignored", "reason": "the batch has already ended", "batch_id": batch_id}
        return {"status": "signalled", "batch_id": batch_id}


async def _read_body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise _Answer(413, {"error": f"body over {MAX_BODY_BYTES} bytes"})
        chunks.append(chunk)
        if not message.get("more_body"):
            return b"".join(chunks)


def create_hooks_app(settings: Any | None = None) -> HooksApp:
    """The app with its store and Temporal client from settings (the environment by default),
    connected at ASGI startup: `uvicorn 'durabatch.hooks:create_hooks_app' --factory`."""
    from durabatch.hooks.wiring import deps_from_settings
    from durabatch.settings import load_settings

    resolved = settings or load_settings()
    secrets = {
        "openai": _secret(resolved.openai_webhook_secret),
        "gemini": _secret(resolved.gemini_webhook_secret),
    }
    return HooksApp(secrets, deps_from_settings(resolved))


def _secret(value: Any) -> str | None:
    return None if value is None else str(value.get_secret_value())

"""A small webhook receiver for tests, demos and chaos runs: verifies signatures, counts deliveries.

async with WebhookReceiver(secret="s3cret", fail_first=2) as receiver:
    url = receiver.url          # give this to a batch's webhook handler
    ...
    receiver.accepted           # verified deliveries answered 200, in order
"""

from __future__ import annotations

import json
import socket
from collections import Counter
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from aiohttp import web

from durabatch.webhooks import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    ReplayGuard,
    WebhookVerificationError,
    verify_signature,
)

__all__ = ["Delivery", "WebhookReceiver"]


@dataclass
class Delivery:
    body: dict[str, Any]
    idempotency_key: str | None
    headers: dict[str, str] = field(default_factory=dict)


class WebhookReceiver:
    def __init__(self, secret: str | None = None, *, fail_first: int = 0, fail_status: int = 500) -> None:
        self.secret = secret
        self.fail_remaining = fail_first
        self.fail_status = fail_status
        self.accepted: list[Delivery] = []
        self._replay_guard = ReplayGuard()
        self.attempts = 0
        self.rejected: list[str] = []
        self._runner: web.AppRunner | None = None
        self.url = ""

    def deliveries_per_batch(self) -> Counter[str]:
        return Counter(str(d.body.get("batch_id")) for d in self.accepted)

    async def _handle(self, request: web.Request) -> web.Response:
        self.attempts += 1
        raw = await request.read()
        if self.secret is not None:
            try:
                verify_signature(
                    self.secret,
                    raw,
                    request.headers.get(TIMESTAMP_HEADER),
                    request.headers.get(SIGNATURE_HEADER),
                    replay_guard=self._replay_guard,
                )
            except WebhookVerificationError as exc:
                self.rejected.append(str(exc))
                return web.Response(status=401, text=str(exc))
        if self.fail_remaining > 0:
            self.fail_remaining -= 1
            return web.Response(status=self.fail_status, text="failing on purpose")
        self.accepted.append(
            Delivery(json.loads(raw), request.headers.get("Idempotency-Key"), dict(request.headers))
        )
        return web.json_response({"ok": True})

    async def __aenter__(self) -> WebhookReceiver:
        app = web.Application()
        app.router.add_post("/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        await web.SockSite(self._runner, sock).start()
        self.url = f"http://127.0.0.1:{sock.getsockname()[1]}/hook"
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

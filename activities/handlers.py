"""Completion handlers, each run at most once after a success.

The store's `handler_deliveries` row is the guard: it survives workflow resets and worker deaths,
so a handler recorded as succeeded is skipped whatever the workflow history says. Webhooks record
their success in the same activity that POSTs, right after the 2xx; the Idempotency-Key header
lets a receiver drop the rare duplicate of a worker that died between the two.
"""

from __future__ import annotations

import asyncio
import os

import httpx
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.deps import ActivityDeps
from activities.errors import invalid_input
from durabatch import activity_api as api
from durabatch import contract
from durabatch.activity_api import HandlerInput, HandlerResult
from durabatch.store import StoreUnavailable, batches, connection, handlers
from durabatch.webhooks import signature_headers

__all__ = ["HandlerActivities"]

#: about 30 s of tries: long enough to ride out a database restart
_RECORD_ATTEMPTS = 8


class HandlerActivities:
    def __init__(self, deps: ActivityDeps) -> None:
        self._deps = deps

    @activity.defn(name=api.activity_name(api.deliver_webhook))
    async def deliver_webhook(self, inp: HandlerInput) -> HandlerResult:
        spec = inp.handler
        if not spec.url:
            raise invalid_input(f"handlers[{inp.handler_index}].url is missing")
        secret = ""
        if spec.secret_env:
            secret = os.environ.get(spec.secret_env, "")
            if not secret:
                # Name the variable, never a value.
                raise invalid_input(f"webhook secret variable {spec.secret_env} is not set on the worker")
        async with connection(self._deps.pool) as conn:
            previous = await handlers.begin_attempt(conn, inp.batch_id, inp.handler_index, "webhook")
        if previous == "succeeded":
            return HandlerResult(status="skipped", detail="already delivered")
        body = inp.summary.model_dump_json().encode()
        headers = {"Content-Type": "application/json", "Idempotency-Key": inp.idempotency_key}
        if secret:
            headers.update(signature_headers(secret, body))
        try:
            response = await self._deps.http.post(spec.url, content=body, headers=headers, timeout=30.0)
        except httpx.HTTPError as exc:
            await handlers.record_failure(
                self._deps.pool, inp.batch_id, inp.handler_index, f"{type(exc).__name__}"
            )
            raise ApplicationError(
                f"webhook {spec.url} unreachable: {type(exc).__name__}", type=contract.WEBHOOK_FAILED
            ) from None
        if response.status_code >= 300:
            error = f"webhook {spec.url} answered HTTP {response.status_code}"
            await handlers.record_failure(self._deps.pool, inp.batch_id, inp.handler_index, error)
            raise ApplicationError(error, type=contract.WEBHOOK_FAILED)
        await self._record_delivered(inp)
        return HandlerResult(status="succeeded", detail=f"HTTP {response.status_code}")

    async def _record_delivered(self, inp: HandlerInput) -> None:
        """Record a delivery the receiver has acknowledged, trying hard: failing here means the
        activity is retried and the webhook POSTed again (a PostgreSQL restart at this moment
        did exactly that in a chaos run)."""
        for attempt in range(_RECORD_ATTEMPTS):
            try:
                await handlers.record_success(self._deps.pool, inp.batch_id, inp.handler_index)
                await batches.mark_handlers_dispatched(self._deps.pool, inp.batch_id)
                return
            except StoreUnavailable as exc:
                if attempt == _RECORD_ATTEMPTS - 1:
                    raise
                activity.logger.warning(
                    "recording a delivered webhook failed, trying again",
                    extra={"batch_id": inp.batch_id, "error": type(exc).__name__},
                )
                await asyncio.sleep(min(0.5 * 2**attempt, 5.0))

    @activity.defn(name=api.activity_name(api.claim_handler))
    async def claim_handler(self, inp: HandlerInput) -> HandlerResult:
        async with connection(self._deps.pool) as conn:
            previous = await handlers.begin_attempt(conn, inp.batch_id, inp.handler_index, "activity")
        if previous == "succeeded":
            return HandlerResult(status="skipped", detail="already succeeded")
        return HandlerResult(status="succeeded")

    @activity.defn(name=api.activity_name(api.record_handler))
    async def record_handler(self, inp: HandlerInput) -> None:
        await handlers.record_success(self._deps.pool, inp.batch_id, inp.handler_index)
        await batches.mark_handlers_dispatched(self._deps.pool, inp.batch_id)

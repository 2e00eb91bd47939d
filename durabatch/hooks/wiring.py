"""The receiver's dependencies from settings: the store (found as the CLI finds it) and a Temporal
client, both connected at the app's startup and closed at its shutdown."""

from __future__ import annotations

from typing import Any

from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from durabatch.dblocate import find_database_url
from durabatch.hooks.app import HookDeps
from durabatch.hooks.events import ProviderEvent
from durabatch.settings import Settings
from durabatch.store import create_pool, provider_events
from durabatch.store.pool import Pool
from durabatch.temporal import connect

__all__ = ["PROVIDER_EVENT_SIGNAL", "deps_for", "deps_from_settings", "signal_workflow"]

#: The batch workflow's signal for a provider event (workflows/batch.py).
PROVIDER_EVENT_SIGNAL = "provider_event"


async def signal_workflow(client: Client, workflow_id: str, payload: dict[str, Any]) -> bool:
    """Signal the batch's current run; False if its workflow has already closed."""
    try:
        await client.get_workflow_handle(workflow_id).signal(PROVIDER_EVENT_SIGNAL, payload)
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            return False
        raise
    return True


def deps_for(pool: Pool, client: Client) -> HookDeps:
    """The receiver's dependencies on a connected store and Temporal client."""

    async def find_workflow(provider: str, provider_batch_id: str) -> tuple[str, str] | None:
        found = await provider_events.find_batch(pool, provider, provider_batch_id)
        return None if found is None else (found.batch_id, found.workflow_id)

    async def already_handled(provider: str, event_id: str) -> bool:
        return await provider_events.already_handled(pool, provider, event_id)

    async def record_handled(event: ProviderEvent, batch_id: str | None) -> None:
        await provider_events.record_handled(
            pool,
            provider=event.provider,
            event_id=event.event_id,
            event_type=event.type,
            provider_batch_id=event.provider_batch_id,
            batch_id=batch_id,
        )

    async def signal(workflow_id: str, payload: dict[str, Any]) -> bool:
        return await signal_workflow(client, workflow_id, payload)

    return HookDeps(find_workflow, already_handled, record_handled, signal)


def deps_from_settings(settings: Settings) -> HookDeps:
    """Dependencies that connect at the app's startup (store found as the CLI finds it); a
    delivery before that is answered 503, as when the store is down."""
    pools: list[Pool] = []

    async def not_started(*_: Any) -> Any:
        raise RuntimeError("the webhook receiver has not connected yet")

    deps = HookDeps(not_started, not_started, not_started, not_started)

    async def startup() -> None:
        pool = await create_pool(find_database_url(settings), min_size=1, max_size=4)
        pools.append(pool)
        ready = deps_for(pool, await connect(settings))
        deps.find_workflow, deps.already_handled = ready.find_workflow, ready.already_handled
        deps.record_handled, deps.signal = ready.record_handled, ready.signal

    async def shutdown() -> None:
        while pools:
            await pools.pop().close()

    deps.startup, deps.shutdown = startup, shutdown
    return deps

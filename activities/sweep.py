"""sweep_account: one status sweep of a provider account (the account sweep workflow, workflows/sweep.py).

Instead of every batch polling each of its provider batches, one list call per page covers the
whole account: the sweep lists the batches created since the oldest one the store still watches,
compares each with its `provider_batches` row, and wakes (`provider_event`) only the batches of
ours whose provider status changed. A listed batch that is not in the store (another application
on the same account) matches no row and wakes nobody.

Idempotent: the changed statuses of a page are recorded in the same transaction as the page's
signals, so a sweep that fails before its signals went out records nothing and the retry sees the
same changes again; a signal repeated by a retry only makes a batch poll once more. What the batch
then does comes from its own poll, never from the list: the sweep only says "look now".
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import activity

from activities.deps import ActivityDeps
from activities.errors import to_application_error
from activities.heartbeat import heartbeating
from durabatch import activity_api as api
from durabatch.activity_api import SweepInput, SweepResult
from durabatch.hooks.wiring import signal_workflow
from durabatch.providers import errors as perr
from durabatch.store import errors as serr
from durabatch.store import provider_batches
from durabatch.store.pool import transaction

__all__ = ["SWEEP_CLOCK_SKEW", "SWEEP_FLUSH_EVERY", "SWEEP_HEARTBEAT_SECONDS", "SweepActivities"]

#: the store's clock (when an attempt started) and the provider's (when it created the batch)
#: may disagree; the window opens this much earlier so a batch is never cut off by skew
SWEEP_CLOCK_SKEW = timedelta(minutes=5)
#: listed statuses are compared with the store, and their signals sent, this many at a time (one
#: provider page): a transaction stays short, and a long list never sits in memory
SWEEP_FLUSH_EVERY = 100
#: well inside the sweep's 10 s heartbeat timeout (workflows/options.py SWEEP), which is short
#: because every batch's wake-up waits on the sweep a killed worker left
SWEEP_HEARTBEAT_SECONDS = 3.0


class SweepActivities:
    def __init__(self, deps: ActivityDeps) -> None:
        self._deps = deps

    @activity.defn(name=api.activity_name(api.sweep_account))
    async def sweep_account(self, inp: SweepInput) -> SweepResult:
        try:
            async with heartbeating(every_seconds=SWEEP_HEARTBEAT_SECONDS):
                return await self._sweep(inp)
        except (perr.ProviderError, serr.StoreError) as exc:
            raise to_application_error(exc) from exc

    async def _sweep(self, inp: SweepInput) -> SweepResult:
        result = SweepResult()
        oldest = await provider_batches.sweep_window(self._deps.pool, inp.provider)
        if oldest is None:
            return result  # nothing of ours is in flight: the provider is not even asked
        since = (oldest - SWEEP_CLOCK_SKEW).timestamp()
        pending: dict[str, str] = {}
        async for summary in self._deps.provider(inp.provider).list_batches(since, inp.max_pages):
            result.listed += 1
            pending[summary.provider_batch_id] = summary.provider_status
            if len(pending) >= SWEEP_FLUSH_EVERY:
                await self._flush(inp.provider, pending, result)
                pending = {}
        if pending:
            await self._flush(inp.provider, pending, result)
        activity.logger.info(
            "account sweep",
            extra={
                "provider": inp.provider,
                "listed": result.listed,
                "changed": result.changed,
                "signalled": result.signalled,
            },
        )
        return result

    async def _flush(self, provider: str, statuses: dict[str, str], result: SweepResult) -> None:
        client = activity.client()
        async with transaction(self._deps.pool) as conn:
            changes = await provider_batches.record_swept(conn, provider, statuses)
            for change in changes:
                payload = {
                    "source": "sweep",
                    "provider_batch_id": change.provider_batch_id,
                    "status": change.provider_status,
                }
                # False: the workflow has closed (NOT_FOUND), and nothing is left to wake
                if await signal_workflow(client, change.workflow_id, payload):
                    result.signalled += 1
        result.changed += len(changes)

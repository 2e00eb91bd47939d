"""finalize_batch: give every request exactly one outcome, sum tokens and cost, set the end status."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from temporalio import activity

from activities.deps import ActivityDeps
from activities.errors import invalid_input
from activities.heartbeat import heartbeating
from durabatch import activity_api as api
from durabatch.activity_api import FinalizeInput
from durabatch.models import BatchTotals, OutcomeCounts
from durabatch.store import batches, transaction
from durabatch.telemetry.metrics import DurabatchMetrics

__all__ = ["FinalizeActivities"]

_CODES = {"failed": "missing_result", "expired": "batch_expired", "cancelled": "batch_cancelled"}


class FinalizeActivities:
    def __init__(self, deps: ActivityDeps) -> None:
        self._deps = deps

    @activity.defn(name=api.activity_name(api.finalize_batch))
    async def finalize_batch(self, inp: FinalizeInput) -> BatchTotals:
        async with heartbeating():
            return await self._finalize_batch(inp)

    async def _finalize_batch(self, inp: FinalizeInput) -> BatchTotals:
        async with transaction(self._deps.pool) as conn:
            resolved = await batches.reconcile(
                conn,
                inp.batch_id,
                outcome=inp.unresolved_outcome,
                code=_CODES[inp.unresolved_outcome],
                reason=inp.unresolved_reason,
            )
            sums = await batches.totals(conn, inp.batch_id)
            row = await batches.finish(conn, inp.batch_id, inp.status, inp.failure_reason, inp.cancel_reason)
        if row is None:
            # No retry can create the row: the batch was never staged (or its rows were deleted).
            raise invalid_input(f"batch {inp.batch_id!r} is not in the store; nothing to finalize")
        _record_metrics(self._deps.metrics, row["provider"], inp.status, sums)
        if resolved:
            activity.logger.info(
                "force-resolved requests",
                extra={"batch_id": inp.batch_id, "count": resolved, "outcome": inp.unresolved_outcome},
            )
        return BatchTotals(
            status=inp.status,
            counts=OutcomeCounts(
                total=sums["total"],
                succeeded=sums["succeeded"],
                failed=sums["failed"],
                expired=sums["expired"],
                cancelled=sums["cancelled"],
                retried=sums["retried"],
            ),
            input_tokens=sums["input_tokens"],
            output_tokens=sums["output_tokens"],
            cached_tokens=sums["cached_tokens"],
            cost_usd=batches.as_float(sums["cost_usd"]),
            cost_unknown_requests=sums["cost_unknown"],
            failure_reason=row["failure_reason"],
            created_at=row["created_at"],
            submitted_at=row["submitted_at"],
            ended_at=row["ended_at"],
        )


def _record_metrics(metrics: DurabatchMetrics, provider: str, status: str, sums: Mapping[str, Any]) -> None:
    """Once per batch, after the end status is committed (a retried finalize may count it twice)."""
    for outcome in ("succeeded", "failed", "expired", "cancelled"):
        metrics.requests_recorded(outcome, int(sums[outcome]), provider=provider)
    metrics.tokens(int(sums["input_tokens"]), int(sums["output_tokens"]), provider=provider)
    cost = batches.as_float(sums["cost_usd"])
    if cost is not None:
        metrics.cost(cost, provider=provider)
    metrics.batch_ended(status, provider)

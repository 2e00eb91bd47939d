"""start_retry_round: the requests of a batch that failed retryably become the next round."""

from __future__ import annotations

from temporalio import activity

from activities.deps import ActivityDeps
from durabatch import activity_api as api
from durabatch.activity_api import RetryRoundInput, RetryRoundResult, ShardPlan
from durabatch.requests_file import ShardPlanner, capped
from durabatch.store import rounds
from durabatch.store.pool import transaction

__all__ = ["RoundActivities"]


class RoundActivities:
    def __init__(self, deps: ActivityDeps) -> None:
        self._deps = deps

    @activity.defn(name=api.activity_name(api.start_retry_round))
    async def start_retry_round(self, inp: RetryRoundInput) -> RetryRoundResult:
        """Idempotent: a retry finds the round already made and answers its shards."""
        limits = capped(
            self._deps.provider(inp.provider).limits, inp.max_requests_per_shard, inp.max_bytes_per_shard
        )
        async with transaction(self._deps.pool) as conn:
            existing = await rounds.round_shards(conn, inp.batch_id, inp.to_round)
            if not existing:
                planner = ShardPlanner(limits)
                if inp.shard is not None and inp.from_round is not None:
                    candidates = await rounds.shard_requests(conn, inp.batch_id, inp.shard, inp.from_round)
                else:
                    candidates = await rounds.retryable_requests(
                        conn, inp.batch_id, include_cancelled=inp.include_cancelled
                    )
                assignment = [(line_no, planner.assign(size)) for line_no, size in candidates]
                if assignment:
                    await rounds.move_to_new_round(conn, inp.batch_id, inp.to_round, assignment)
                existing = [(p.shard, p.request_count, p.byte_size) for p in planner.plans]
        activity.logger.info(
            "retry round",
            extra={
                "batch_id": inp.batch_id,
                "round": inp.to_round,
                "requests": sum(n for _, n, _ in existing),
            },
        )
        return RetryRoundResult(
            shards=[ShardPlan(shard=s, request_count=n, byte_size=b) for s, n, b in existing]
        )

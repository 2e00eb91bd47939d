"""Real time: a batch's requests through the provider's synchronous API instead of its batch API.

Two ways in: `mode: "realtime"` runs every shard this way from the start; `deadline_seconds` in
batch mode falls back to it when the deadline comes near (what the batch API has not finished by
then is cancelled there, what it did finish is kept, and the rest runs here). One activity per
shard runs the shard under its rate limits and resumes without re-sending a finished request.

Workflow code (see workflows/batch.py): deterministic, no I/O but activities.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.exceptions import ActivityError
from temporalio.workflow import ActivityCancellationType

with workflow.unsafe.imports_passed_through():
    from durabatch import activity_api as api
    from durabatch.activity_api import RealtimeChunkInput
    from durabatch.models import ShardState
    from workflows import options
    from workflows.calls import cause_message, priority_of, short_summary
    from workflows.views import live_counts

from workflows.polling import BatchPolling

__all__ = ["FALLBACK_MARGIN", "FALLBACK_RPM", "BatchRealtime"]

#: the rate the fallback plans with when the batch gives none (`realtime.rpm`)
FALLBACK_RPM = 600
#: time kept in hand before the deadline, for the provider's cancel to settle (OpenAI: minutes):
#: this, or a tenth of the deadline if that is shorter
FALLBACK_MARGIN = timedelta(minutes=5)
#: a whole shard per activity: the line range covers every line
_ALL_LINES = (0, 2**31 - 1)


class BatchRealtime(BatchPolling):
    def _fallback_at(self) -> datetime | None:
        """When the batch API must hand over to real time to make the deadline, or None."""
        cfg = self._require_cfg()
        st = self._state
        if cfg.deadline_seconds is None or cfg.mode == "realtime" or st.fell_back or st.started_at is None:
            return None
        pending = live_counts(st).pending
        rpm = cfg.realtime.rpm or FALLBACK_RPM
        needed = timedelta(minutes=pending / rpm)
        deadline = timedelta(seconds=cfg.deadline_seconds)
        return st.started_at + deadline - needed * 1.1 - min(FALLBACK_MARGIN, deadline / 10)

    async def _fall_back(self) -> None:
        """The deadline is near: cancel what the batch API has not finished (its results so far
        are ingested as the provider ends the batches); `_finish_in_realtime` then runs the rest."""
        self._state.fell_back = True
        workflow.logger.info("deadline near: cancelling at the batch API, finishing in real time")
        await self._cancel_at_provider()
        self._publish()

    async def _finish_in_realtime(self) -> None:
        """After the fallback's cancelled provider batches are ingested: their unfinished (and
        retryably failed) requests become a new round, run in real time."""
        st = self._state
        if not st.fell_back or st.cancel_requested or self._expiring:
            return
        fresh = await self._new_round(
            self._next_round(), "move unfinished requests to real time", include_cancelled=True
        )
        await self._run_realtime(fresh)

    async def _send_round(self, shards: list[ShardState]) -> bool:
        if self._require_cfg().mode != "realtime":
            return await super()._send_round(shards)
        await self._run_realtime(shards)
        return True

    async def _run_realtime(self, shards: list[ShardState]) -> None:
        """Each shard through the synchronous API, one after the other (each runs its requests
        concurrently under the rate limits); a cancel stops the one running."""
        cfg = self._require_cfg()
        st = self._state
        st.status = "in_progress"
        for shard in shards:
            if st.cancel_requested:
                return
            shard.state = "running_realtime"
            self._publish()
            started = workflow.now()
            handle = workflow.start_activity(
                api.run_realtime_chunk,
                RealtimeChunkInput(
                    batch_id=cfg.batch_id,
                    provider=cfg.provider,
                    endpoint=cfg.endpoint,
                    model=st.model,
                    shard=shard.shard,
                    round=shard.round,
                    line_from=_ALL_LINES[0],
                    line_to=_ALL_LINES[1],
                    limits=cfg.realtime,
                ),
                start_to_close_timeout=options.REALTIME.start_to_close,
                heartbeat_timeout=options.REALTIME.heartbeat,
                retry_policy=options.REALTIME.retry,
                summary=short_summary(f"shard {shard.shard} in real time"),
                priority=priority_of(cfg),
                # a cancelled shard stops writing before the batch records its outcomes
                cancellation_type=ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
            )
            await workflow.wait_condition(lambda h=handle: h.done() or st.cancel_requested)  # type: ignore[misc]
            if not handle.done():
                handle.cancel()
            try:
                result = await handle
            except ActivityError as err:  # cancelled by us, or its retries ran out
                if not st.cancel_requested:
                    workflow.logger.warning("real-time shard %s failed: %s", shard.shard, cause_message(err))
                shard.state = "cancelled" if st.cancel_requested else "failed"
                shard.ingested = True
                continue
            shard.state, shard.ingested = "completed", True
            shard.succeeded, shard.failed = result.succeeded, result.failed
            shard.input_tokens, shard.output_tokens = result.input_tokens, result.output_tokens
            # an attempt that resumed a crashed one skips what that one wrote: real time ran those too
            finished = result.written + result.skipped
            st.realtime_requests += finished
            minutes = (workflow.now() - started).total_seconds() / 60
            if finished and minutes > 0:
                st.realtime_rpm = round(finished / minutes, 1)
        self._publish()

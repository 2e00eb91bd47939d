"""The poll loop: sleep on the schedule, poll the provider, ingest what ended, resubmit what the
provider refused for quota, give up on a provider batch the provider forgot, expire at max age.

Workflow code (see workflows/batch.py): deterministic, no I/O but activities.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from durabatch import activity_api as api
    from durabatch.activity_api import (
        IngestInput,
        IngestResult,
        PollInput,
        PollResult,
        RetryRoundInput,
        RoundInput,
    )
    from durabatch.contract import (
        PROVIDER_LOST_BATCH,
        PROVIDER_TERMINAL_STATES,
        TERMINAL_BATCH_STATUSES,
    )
    from durabatch.models import ShardState
    from workflows import options
    from workflows.calls import cause_message, execute, priority_of
    from workflows.schedule import poll_delay

from workflows.base import (
    CANCEL_POLL_DELAY_SECONDS,
    EXPIRY_GRACE,
    HISTORY_EVENTS_PER_RUN,
    MAX_QUOTA_RETRIES,
    NOT_FOUND_POLLS_LIMIT,
    PATCH_EXPIRY_KEEPS_PARTIAL_RESULTS,
    PATCH_QUICK_POLL_AFTER_CANCEL,
    PATCH_QUOTA_AS_ROUND,
    PATCH_RETRY_ROUNDS,
    BatchBase,
    ContinueAsNewNow,
)

__all__ = ["BatchPolling"]


class BatchPolling(BatchBase):
    """The polling phase of BatchWorkflow, until every provider batch has ended and been ingested."""

    async def _poll_until_done(self) -> None:
        st = self._state
        deadline = self._deadline()
        while self._shards_awaiting_results():
            if st.cancel_requested and not st.cancel_sent:
                await self._cancel_at_provider()
                st.cancel_sent = True
                # A cancelling provider batch ends soon: start the schedule over instead of
                # sleeping out a long late-schedule interval, and look again within seconds.
                st.schedule_origin = st.poll_count
                self._quick_poll_after_cancel = workflow.patched(PATCH_QUICK_POLL_AFTER_CANCEL)
            now = workflow.now()
            if now >= deadline:
                await self._expire()
                return
            fallback_at = self._fallback_at()
            if fallback_at is not None and now >= fallback_at:
                await self._fall_back()
                # the cancelled batches end soon: poll again within seconds, as after a cancel
                st.schedule_origin = st.poll_count
                self._quick_poll_after_cancel = True
                continue
            delay = self._next_delay()
            if self._quick_poll_after_cancel and st.poll_count == st.schedule_origin:
                delay = min(delay, CANCEL_POLL_DELAY_SECONDS)
            if fallback_at is not None:
                delay = min(delay, max((fallback_at - now).total_seconds(), 0.001))
            self._next_poll_at = now + timedelta(seconds=delay)
            self._publish_details()  # "next poll in 4 min" on the batch's Web UI page
            cancel_seen = st.cancel_requested
            try:
                await workflow.wait_condition(
                    lambda seen=cancel_seen: st.cancel_requested != seen or self._poll_now,  # type: ignore[misc]
                    timeout=timedelta(seconds=max(delay, 0.001)),
                    timeout_summary=f"poll #{st.poll_count + 1}",
                )
                if st.cancel_requested != cancel_seen:
                    continue  # woken by a cancel request: send it now
                # woken by a provider event: poll at once (a lost event is what the schedule is for)
            except TimeoutError:
                pass
            self._poll_now = False
            self._next_poll_at = None
            st.poll_count += 1
            await self._poll_and_ingest()
            self._publish()
            if workflow.info().get_current_history_length() > HISTORY_EVENTS_PER_RUN:
                raise ContinueAsNewNow()
        if st.status not in TERMINAL_BATCH_STATUSES:
            st.status = self._ended_status()

    async def _poll_and_ingest(self) -> None:
        cfg = self._require_cfg()
        st = self._state
        active = self._shards_awaiting_results()
        try:
            polled: PollResult = await execute(
                api.poll_shards,
                PollInput(batch_id=cfg.batch_id, provider=cfg.provider, shards=active),
                options.POLL,
                summary=f"poll {cfg.provider}",
                priority=priority_of(cfg),
            )
        except (ActivityError, ApplicationError) as err:
            # A provider outage: keep the batch and poll again on the schedule. (A local activity's
            # failure arrives as the activity's own ApplicationError, not wrapped in ActivityError.)
            workflow.logger.warning("poll failed, will retry on schedule: %s", cause_message(err))
            return
        by_key = {(s.shard, s.round): s for s in polled.shards}
        for shard in st.shards:
            fresh = by_key.get((shard.shard, shard.round))
            if fresh is None:
                continue
            if not fresh.not_found:
                shard.apply_poll(fresh)
                continue
            shard.not_found_polls += 1
            if shard.not_found_polls >= NOT_FOUND_POLLS_LIMIT:
                self._lose(shard)
        for shard in st.shards:
            if shard.admission_key is not None and shard.state in PROVIDER_TERMINAL_STATES:
                # ended at the provider: its queue room is free (or it was refused for lack of it)
                await self._release(shard, refused_model=st.model if shard.retry_later else None)
        if any(s.state in ("in_progress", "finalizing") for s in st.shards) and st.status == "submitted":
            st.status = "in_progress"
        for shard in st.shards:
            if shard.state in PROVIDER_TERMINAL_STATES and not shard.ingested:
                if self._should_resubmit(shard):
                    await self._resubmit(shard)
                    continue
                st.status = "finalizing" if st.status not in ("cancelled", "expired") else st.status
                self._publish()
                await self._ingest(shard)

    async def _retry_rounds(self) -> None:
        """Once every provider batch of a round has ended: send the requests that failed
        retryably (durabatch.vocabulary's rule) again as a new round, up to max_rounds. Each
        attempt keeps its result row; the final round's is the request's result."""
        cfg = self._require_cfg()
        st = self._state
        if not workflow.patched(PATCH_RETRY_ROUNDS):
            return  # runs before it never retried
        while (
            st.retry_rounds + 1 < cfg.max_rounds
            and not st.cancel_requested
            and not self._expiring
            and st.status not in ("cancelled", "expired")
            and not self._shards_awaiting_results()
            and workflow.now() < self._deadline()
        ):
            fresh = await self._new_round(self._next_round(), f"plan retry round {st.retry_rounds + 1}")
            if not fresh:
                return
            st.retry_rounds += 1
            st.status = "in_progress"
            self._publish()
            if not await self._send_round(fresh):
                return

    def _next_round(self) -> int:
        """Rounds are numbered one past the highest so far, whatever started the last one."""
        return max((s.round for s in self._state.shards), default=0) + 1

    async def _new_round(
        self,
        to_round: int,
        summary: str,
        *,
        include_cancelled: bool = False,
        shard: int | None = None,
        from_round: int | None = None,
        quota_retries: int = 0,
    ) -> list[ShardState]:
        """Move the requests to send again into round `to_round` (`start_retry_round`: those that
        failed retryably, also those cancelled with their batch, or every request of one shard)
        and add the round's shards to the state, not yet sent; empty when there is none."""
        cfg = self._require_cfg()
        plan = await execute(
            api.start_retry_round,
            RetryRoundInput(
                batch_id=cfg.batch_id,
                provider=cfg.provider,
                to_round=to_round,
                include_cancelled=include_cancelled,
                shard=shard,
                from_round=from_round,
            ),
            options.FINALIZE,
            summary=summary,
            priority=priority_of(cfg),
        )
        fresh = [
            ShardState(
                shard=p.shard, round=to_round, request_count=p.request_count, quota_retries=quota_retries
            )
            for p in plan.shards
        ]
        self._state.shards.extend(fresh)
        return fresh

    async def _send_round(self, shards: list[ShardState]) -> bool:
        """Submit a round's shards and poll them to the end; False if a submit failed."""
        for shard in shards:
            if not await self._submit(shard):
                await self._cancel_at_provider()
                return False
        await self._poll_until_done()
        return True

    def _fallback_at(self) -> datetime | None:
        """When to hand the batch API's unfinished work to real time (workflows/realtime.py)."""
        return None

    async def _fall_back(self) -> None:
        """Start the hand-over to real time (workflows/realtime.py)."""

    def _lose(self, shard: ShardState) -> None:
        """The provider no longer knows this batch: stop polling it and fail the batch."""
        cfg = self._require_cfg()
        message = (
            f"{cfg.provider} answered 'not found' to {shard.not_found_polls} polls in a row for provider "
            f"batch {shard.provider_batch_id} (shard {shard.shard}); likely causes: the worker's API key "
            "belongs to another account or organisation than the one that created it, or the provider "
            "lost its state (an emulator restart)"
        )
        workflow.logger.warning(message)
        shard.state = "failed"
        shard.failure_code = PROVIDER_LOST_BATCH
        shard.failure_message = message
        shard.ingested = True  # nothing to read: its requests are failed by finalize with the reason
        self._state.failure_reason = self._state.failure_reason or message

    def _should_resubmit(self, shard: ShardState) -> bool:
        return (
            shard.state == "failed"
            and shard.retry_later
            and shard.quota_retries < MAX_QUOTA_RETRIES
            and not self._state.cancel_requested
            and not self._expiring
        )

    async def _resubmit(self, shard: ShardState) -> None:
        """A provider refused the batch for quota: wait one poll interval, then submit the shard
        again as a new round (its requests never ran, so nothing is lost or charged twice)."""
        cfg = self._require_cfg()
        st = self._state
        shard.quota_retries += 1
        wait = min(self._next_delay(), (self._deadline() - workflow.now()).total_seconds())
        workflow.logger.info(
            "provider quota exceeded; submitting shard %s again in %.0f s", shard.shard, wait
        )
        try:
            await workflow.wait_condition(
                lambda: st.cancel_requested,
                timeout=timedelta(seconds=max(wait, 0.001)),
                timeout_summary="quota backoff",
            )
            return  # cancelled while waiting: the shard stays failed, its requests are cancelled
        except TimeoutError:
            pass
        if workflow.now() >= self._deadline():
            return
        if workflow.patched(PATCH_QUOTA_AS_ROUND):
            await self._resubmit_as_round(shard)
            return
        await execute(
            api.start_round,
            RoundInput(
                batch_id=cfg.batch_id, shard=shard.shard, from_round=shard.round, to_round=shard.round + 1
            ),
            options.FINALIZE,
            summary=f"start round {shard.round + 1} of shard {shard.shard}",
            priority=priority_of(cfg),
        )
        shard.round += 1
        shard.ref = None
        shard.provider_status = None
        shard.retry_later = False
        shard.failure_code = shard.failure_message = None
        await self._submit(shard)

    async def _resubmit_as_round(self, shard: ShardState) -> None:
        """The refused shard's requests become a new round, as a retry round's do (the same
        activity and numbering); the refused provider batch stays in the state, read by nothing."""
        to_round = self._next_round()
        fresh = await self._new_round(
            to_round,
            f"shard {shard.shard} again as round {to_round}",
            shard=shard.shard,
            from_round=shard.round,
            quota_retries=shard.quota_retries,
        )
        shard.ingested = True  # its requests never ran and have moved on: nothing to read
        for new in fresh:
            if not await self._submit(new):
                return

    async def _ingest(self, shard: ShardState) -> None:
        cfg = self._require_cfg()
        try:
            ingested: IngestResult = await execute(
                api.ingest_results,
                IngestInput(
                    batch_id=cfg.batch_id,
                    provider=cfg.provider,
                    model=self._state.model,
                    shard=shard,
                    expiry_reason=self._state.failure_reason if self._expiring else None,
                ),
                options.INGEST,
                summary=f"ingest results of shard {shard.shard}",
                priority=priority_of(cfg),
            )
            shard.input_tokens = ingested.input_tokens
            shard.output_tokens = ingested.output_tokens
            shard.cost_usd = ingested.cost_usd
        except ActivityError as err:
            # Only a permanent failure gets here (ingest retries everything else); the shard's
            # requests without a result are failed by finalize, with this reason.
            self._state.failure_reason = (
                f"reading results of shard {shard.shard} failed: {cause_message(err)}"
            )
        shard.ingested = True

    async def _expire(self) -> None:
        """Max age reached: cancel at the provider, keep whatever already ended, force-fail the rest."""
        st = self._state
        st.failure_reason = st.failure_reason or "max age reached before the provider finished"
        await self._cancel_at_provider()
        if workflow.patched(PATCH_EXPIRY_KEEPS_PARTIAL_RESULTS):
            self._expiring = True
            await self._collect_after_cancel(EXPIRY_GRACE)
        else:
            await self._poll_and_ingest()
        st.status = "expired"

    async def _collect_after_cancel(self, grace: timedelta) -> None:
        """Poll, on the schedule from its start, until every cancelled provider batch has ended and
        its partial results are ingested, or `grace` has passed (a provider that ignores the cancel
        must not hold the batch open for long)."""
        cfg = self._require_cfg()
        deadline = workflow.now() + grace
        attempt = 0
        while True:
            await self._poll_and_ingest()
            self._publish()
            now = workflow.now()
            if not self._shards_awaiting_results() or now >= deadline:
                return
            delay = min(
                poll_delay(cfg.poll_schedule, attempt, workflow.random().random()),
                (deadline - now).total_seconds(),
            )
            self._next_poll_at = now + timedelta(seconds=delay)
            self._publish_details()
            await workflow.sleep(timedelta(seconds=max(delay, 0.001)), summary="wait for the cancel")
            self._next_poll_at = None
            attempt += 1

"""BatchWorkflow: the durable lifecycle of one batch (DESIGN.md "One batch, end to end").

stage -> submit each shard -> sleep/poll on the schedule -> ingest each terminal shard ->
reconcile every request to one outcome -> completion handlers, each at most once after success.
Cancel (signal or Temporal cancellation) and max age end it early, keeping partial results.

Deterministic by construction: no I/O, clocks or randomness but the workflow APIs; requests and
results never pass through here, only ids, counts and statuses.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any, Literal

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError, TemporalError

with workflow.unsafe.imports_passed_through():
    from durabatch.contract import (
        BATCH_FAILED,
        BATCH_ID_IN_USE,
        INVALID_INPUT,
        PROVIDER_LOST_BATCH,
        PROVIDER_TERMINAL_STATES,
        TERMINAL_BATCH_STATUSES,
        BatchConfig,
        InvalidBatchInput,
        decode_input,
        validate_input,
    )
    from durabatch.models import (
        BatchInput,
        BatchState,
        BatchStatus,
        BatchSummary,
        BatchTotals,
        CancelInput,
        ClaimInput,
        FinalizeInput,
        IngestInput,
        IngestResult,
        PollInput,
        PollResult,
        RedispatchResult,
        RoundInput,
        ShardState,
        StageInput,
        StageResult,
        StatusQuery,
        SubmitInput,
        SubmitResult,
    )
    from workflows import options
    from workflows.calls import cause_message, cause_type, execute
    from workflows.handlers import initial_handler_states, run_handlers
    from workflows.schedule import poll_delay
    from workflows.views import (
        details_markdown,
        ended_status,
        search_attribute_updates,
        status_of,
        summary_of,
    )

__all__ = ["BatchWorkflow"]

#: Continue as new well before the 2,000-events-per-run budget (about 8 events per poll).
HISTORY_EVENTS_PER_RUN = 1500
#: How many times a shard refused for quota (token_limit_exceeded) is submitted again.
MAX_QUOTA_RETRIES = 5
#: After the max-age cancel, how long to wait for the provider to end the batch and hand over what
#: it finished (OpenAI: "cancelling for up to 10 minutes") before force-failing the rest.
EXPIRY_GRACE = timedelta(minutes=15)
#: workflow.patched id: histories recorded before it polled once after the expiry cancel.
PATCH_EXPIRY_KEEPS_PARTIAL_RESULTS = "expiry-keeps-partial-results"
#: workflow.patched id: runs before it did not claim their batch id before staging.
PATCH_CLAIM_BATCH_ID = "claim-batch-id"
#: workflow.patched id: runs before it accepted a `state` from a client's start.
PATCH_CLIENT_STATE_REFUSED = "client-state-refused"
#: workflow.patched id: runs before it ended a failed batch COMPLETED, and one cancelled through
#: Temporal COMPLETED too; now they close as Failed (BatchFailed, the summary in its details) and
#: as Canceled.
PATCH_CLOSE_AS_OUTCOME = "close-as-outcome"
#: workflow.patched id: runs before it waited a whole first schedule delay after a cancel.
PATCH_QUICK_POLL_AFTER_CANCEL = "quick-poll-after-cancel"
#: After the provider cancel is sent, the next poll comes this soon (or the first delay if shorter).
CANCEL_POLL_DELAY_SECONDS = 5.0
#: Consecutive polls answered "not found" after which a provider batch counts as lost.
NOT_FOUND_POLLS_LIMIT = 5


def _awaits_results(shard: ShardState) -> bool:
    """Sent to the provider, results not ingested yet: the batch must poll on."""
    return shard.provider_batch_id is not None and not shard.ingested


@workflow.defn(name="BatchWorkflow")
class BatchWorkflow:
    def __init__(self) -> None:
        self._cfg: BatchConfig | None = None
        self._invalid_input: str | None = None
        self._state = BatchState()
        self._next_poll_at: datetime | None = None
        self._handlers_ran = False
        self._redispatching = False
        self._expiring = False
        self._cancelled_through_temporal = False
        self._quick_poll_after_cancel = False

    # ---- interface --------------------------------------------------------------------------

    @workflow.run
    async def run(self, raw: Any = None) -> BatchSummary:
        # Untyped on purpose: any JSON decodes, then a bad field fails the workflow naming it
        # (a typed input that does not decode would leave the workflow stuck; TEMPORAL.md).
        info = workflow.info()
        try:
            inp = decode_input(raw, strict=info.continued_run_id is None)
            # Only a run this workflow continued as new may carry `state`; a client's may not.
            continued = info.continued_run_id is not None or (
                inp.state is not None and not workflow.patched(PATCH_CLIENT_STATE_REFUSED)
            )
            self._cfg = validate_input(inp, info.workflow_id, continued=continued)
        except InvalidBatchInput as exc:
            self._invalid_input = str(exc)
            raise ApplicationError(str(exc), type=INVALID_INPUT, non_retryable=True) from None
        if inp.state is not None:
            self._state = inp.state
        else:
            self._state.started_at = workflow.now()
            self._state.model = self._cfg.model
        self._publish()
        try:
            summary = await self._lifecycle(inp)
        except _ContinueAsNew:
            await workflow.wait_condition(workflow.all_handlers_finished)
            # Inline requests are staged by now: only the carried state changes.
            workflow.continue_as_new(inp.model_copy(update={"state": self._state, "requests": None}))
        return self._close(summary)

    async def _lifecycle(self, inp: BatchInput) -> BatchSummary:
        """Stage, submit, poll, finalize, handlers; whatever goes wrong becomes a decision."""
        try:
            if self._state.status not in TERMINAL_BATCH_STATUSES:
                try:
                    await self._stage_submit_poll(inp)
                except asyncio.CancelledError:
                    # Temporal's own cancellation (Web UI button, `temporal workflow cancel`) means
                    # the same as the cancel signal: cancel at the provider and keep partial results.
                    self._cancelled_through_temporal = True
                    self._request_cancel("cancelled through Temporal")
                    await self._stage_submit_poll(inp)
            return await self._complete()
        except (_ContinueAsNew, ApplicationError, asyncio.CancelledError):
            raise
        except ActivityError as err:
            return await self._fail_unexpected(
                f"{cause_type(err) or 'activity'} failed: {cause_message(err)}"
            )
        except TemporalError:
            raise  # nondeterminism and other SDK errors: a code fault, fixed by deploying a fix
        except Exception as err:
            # Any other bug in workflow code would fail the workflow task and retry it forever.
            workflow.logger.exception("unexpected error in the batch workflow")
            return await self._fail_unexpected(f"internal error: {type(err).__name__}: {err}")

    async def _fail_unexpected(self, reason: str) -> BatchSummary:
        """Fail the batch with `reason`: cancel what was sent, give every request its outcome, run
        handlers. If even that fails, close the workflow as failed (never a task-failure loop)."""
        self._fail(reason)
        try:
            await self._cancel_at_provider(include_submitting=True)
            return await self._complete()
        except (ApplicationError, asyncio.CancelledError, TemporalError):
            raise
        except Exception as err:
            raise ApplicationError(
                f"batch {self._require_cfg().batch_id} failed: {reason}; cleaning up failed too: {err}",
                type=BATCH_FAILED,
                non_retryable=True,
            ) from None

    def _close(self, summary: BatchSummary) -> BatchSummary:
        """A failed batch closes as Failed and a Temporal-cancelled one as Canceled, so lists tell
        them from completed ones (old runs, unpatched, return the summary in every case)."""
        if summary.status == "failed" and workflow.patched(PATCH_CLOSE_AS_OUTCOME):
            raise ApplicationError(
                f"batch {summary.batch_id} failed: {summary.failure_reason or 'see the summary'}",
                summary,
                type=BATCH_FAILED,
                non_retryable=True,
            )
        if self._cancelled_through_temporal and workflow.patched(PATCH_CLOSE_AS_OUTCOME):
            raise asyncio.CancelledError(f"batch {summary.batch_id} cancelled through Temporal")
        return summary

    @workflow.signal(name="cancel")
    def cancel(self, payload: Any = None) -> None:
        # Any payload is accepted: `{"reason": ...}`, a bare string, or nothing at all.
        reason = (
            payload.get("reason")
            if isinstance(payload, dict)
            else payload
            if isinstance(payload, str)
            else None
        )
        self._request_cancel(str(reason) if reason else "cancelled by request")

    @workflow.query(name="status")
    def status(self) -> StatusQuery:
        return status_of(self._require_cfg(), self._state, self._next_poll_at)

    @workflow.update(name="redispatch_handlers")
    async def redispatch_handlers(self) -> RedispatchResult:
        self._redispatching = True
        try:
            await self._run_handlers(only_failed=True)
        finally:
            self._redispatching = False
        return RedispatchResult(handlers=self._state.handlers)

    @redispatch_handlers.validator
    def _validate_redispatch(self) -> None:
        if not self._handlers_ran:
            raise ValueError("handlers have not run yet: the batch has not finished")
        if self._redispatching:
            raise ValueError("a redispatch is already running")
        if not any(h.status == "failed" for h in self._state.handlers):
            raise ValueError("no failed handler to redispatch")

    # ---- phases -----------------------------------------------------------------------------

    async def _stage_submit_poll(self, inp: BatchInput) -> None:
        cfg = self._require_cfg()
        st = self._state
        if not st.staged and workflow.patched(PATCH_CLAIM_BATCH_ID):
            await self._claim()
        if not st.staged:
            try:
                staged: StageResult = await execute(
                    "stage_requests",
                    StageInput(
                        batch_id=cfg.batch_id,
                        workflow_id=workflow.info().workflow_id,
                        provider=cfg.provider,
                        endpoint=cfg.endpoint,
                        model=cfg.model,
                        requests=inp.requests,
                        requests_uri=inp.requests_uri,
                        metadata=cfg.metadata,
                    ),
                    options.STAGE,
                    StageResult,
                    summary="stage requests into PostgreSQL",
                )
            except ActivityError as err:
                self._fail(f"staging failed: {cause_message(err)}")
                return
            st.staged = True
            st.request_count = staged.request_count
            st.model = staged.model or st.model
            st.shards = [ShardState(shard=p.shard, request_count=p.request_count) for p in staged.shards]
            self._publish()
        if st.cancel_requested and not any(s.provider_batch_id for s in st.shards):
            # Nothing known to be sent: cancel locally. A submit interrupted by Temporal's
            # cancellation may still have created a provider batch; the cancel activity finds it.
            if any(s.state == "submitting" for s in st.shards):
                await self._cancel_at_provider(include_submitting=True)
            st.status = "cancelled"
            return
        for shard in st.shards:
            if shard.provider_batch_id is None and not st.cancel_requested:
                if not await self._submit(shard):
                    # Shards already submitted would run on, billed, for nothing.
                    await self._cancel_at_provider()
                    return
        if st.status == "pending":
            st.status = "submitted"
            self._publish()
        await self._poll_until_done()

    async def _claim(self) -> None:
        """Own the batch id before anything is staged or sent; a batch id the store holds for
        another run fails this one at once, leaving that run's rows untouched."""
        cfg = self._require_cfg()
        info = workflow.info()
        try:
            await execute(
                "claim_batch",
                ClaimInput(
                    batch_id=cfg.batch_id,
                    workflow_id=info.workflow_id,
                    owner_run_id=info.first_execution_run_id,
                    provider=cfg.provider,
                    endpoint=cfg.endpoint,
                    model=cfg.model,
                    metadata=cfg.metadata,
                ),
                options.CLAIM,
                None,
                summary="claim the batch id",
            )
        except ActivityError as err:
            # No finalize and no handlers: the rows in the store belong to the other run.
            message = cause_message(err)
            self._fail(message)
            self._publish()
            kind = BATCH_ID_IN_USE if cause_type(err) == BATCH_ID_IN_USE else BATCH_FAILED
            raise ApplicationError(message, type=kind, non_retryable=True) from None

    async def _submit(self, shard: ShardState) -> bool:
        cfg = self._require_cfg()
        shard.state = "submitting"
        try:
            result: SubmitResult = await execute(
                "submit_shard",
                SubmitInput(
                    batch_id=cfg.batch_id,
                    workflow_id=workflow.info().workflow_id,
                    provider=cfg.provider,
                    endpoint=cfg.endpoint,
                    model=self._state.model,
                    shard=shard.shard,
                    round=shard.round,
                ),
                options.SUBMIT,
                SubmitResult,
                summary=f"submit shard {shard.shard} to {cfg.provider}",
            )
        except ActivityError as err:
            self._fail(f"submitting shard {shard.shard} failed: {cause_message(err)}")
            return False
        shard.provider_batch_id = result.provider_batch_id
        shard.input_file_id = result.input_file_id
        shard.ref_extra = result.ref_extra
        shard.state = "submitted"
        return True

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
            delay = self._next_delay()
            if self._quick_poll_after_cancel and st.poll_count == st.schedule_origin:
                delay = min(delay, CANCEL_POLL_DELAY_SECONDS)
            self._next_poll_at = now + timedelta(seconds=delay)
            cancel_seen = st.cancel_requested
            try:
                await workflow.wait_condition(
                    lambda seen=cancel_seen: st.cancel_requested != seen,  # type: ignore[misc]
                    timeout=timedelta(seconds=max(delay, 0.001)),
                    timeout_summary=f"poll #{st.poll_count + 1}",
                )
                continue  # woken by a cancel request: send it now
            except TimeoutError:
                pass
            self._next_poll_at = None
            st.poll_count += 1
            await self._poll_and_ingest()
            self._publish()
            if workflow.info().get_current_history_length() > HISTORY_EVENTS_PER_RUN:
                raise _ContinueAsNew()
        if st.status not in TERMINAL_BATCH_STATUSES:
            st.status = self._ended_status()

    async def _poll_and_ingest(self) -> None:
        cfg = self._require_cfg()
        st = self._state
        active = self._shards_awaiting_results()
        try:
            polled: PollResult = await execute(
                "poll_shards",
                PollInput(batch_id=cfg.batch_id, provider=cfg.provider, shards=active),
                options.POLL,
                PollResult,
                summary=f"poll {cfg.provider}",
            )
        except ActivityError as err:
            # A provider outage: keep the batch and poll again on the schedule.
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
        await execute(
            "start_round",
            RoundInput(
                batch_id=cfg.batch_id, shard=shard.shard, from_round=shard.round, to_round=shard.round + 1
            ),
            options.FINALIZE,
            int,
            summary=f"start round {shard.round + 1} of shard {shard.shard}",
        )
        shard.round += 1
        shard.provider_batch_id = None
        shard.provider_status = None
        shard.retry_later = False
        shard.failure_code = shard.failure_message = None
        await self._submit(shard)

    async def _ingest(self, shard: ShardState) -> None:
        cfg = self._require_cfg()
        try:
            ingested: IngestResult = await execute(
                "ingest_results",
                IngestInput(
                    batch_id=cfg.batch_id,
                    provider=cfg.provider,
                    model=self._state.model,
                    shard=shard,
                    expiry_reason=self._state.failure_reason if self._expiring else None,
                ),
                options.INGEST,
                IngestResult,
                summary=f"ingest results of shard {shard.shard}",
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

    async def _cancel_at_provider(self, *, include_submitting: bool = False) -> None:
        """Best effort: a failing provider cancel is logged and never blocks the batch."""
        cfg = self._require_cfg()
        shards = [
            s
            for s in self._state.shards
            if _awaits_results(s) or (include_submitting and s.state == "submitting")
        ]
        if not shards:
            return
        try:
            await execute(
                "cancel_provider_batches",
                CancelInput(batch_id=cfg.batch_id, provider=cfg.provider, shards=shards),
                options.CANCEL,
                None,
                summary=f"cancel at {cfg.provider}",
            )
        except ActivityError as err:
            workflow.logger.warning("provider cancel failed (ignored): %s", cause_message(err))

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
            await workflow.sleep(timedelta(seconds=max(delay, 0.001)), summary="wait for the cancel")
            self._next_poll_at = None
            attempt += 1

    async def _complete(self) -> BatchSummary:
        cfg = self._require_cfg()
        st = self._state
        if st.status not in TERMINAL_BATCH_STATUSES:
            st.status = self._ended_status()
        if st.totals is None:
            unresolved: Literal["failed", "expired", "cancelled"] = (
                "cancelled" if st.status == "cancelled" else "expired" if st.status == "expired" else "failed"
            )
            reason = {
                "cancelled": st.cancel_reason or "cancelled",
                "expired": st.failure_reason or "max age reached",
                "failed": st.failure_reason or "missing from the provider's output",
            }.get(st.status, "missing from the provider's output")
            try:
                st.totals = await execute(
                    "finalize_batch",
                    FinalizeInput(
                        batch_id=cfg.batch_id,
                        unresolved_outcome=unresolved,
                        unresolved_reason=reason,
                        status=st.status,
                        failure_reason=st.failure_reason,
                        cancel_reason=st.cancel_reason,
                    ),
                    options.FINALIZE,
                    BatchTotals,
                    summary="reconcile outcomes and totals",
                )
            except ActivityError as err:
                # Its retry budget is spent: the batch still ends (failed), handlers still run.
                self._fail(f"recording the outcomes failed: {cause_message(err)}")
            self._publish()
        if not st.handlers:
            st.handlers = initial_handler_states(cfg)
        await self._run_handlers(only_failed=False)
        self._handlers_ran = True
        if any(h.status == "failed" for h in st.handlers) and cfg.handler_grace_seconds > 0:
            # Stay open so `redispatch_handlers` can re-run the failed ones.
            try:
                await workflow.wait_condition(
                    lambda: not any(h.status == "failed" for h in st.handlers) and not self._redispatching,
                    timeout=timedelta(seconds=cfg.handler_grace_seconds),
                    timeout_summary="waiting for redispatch_handlers",
                )
            except TimeoutError:
                pass
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self._summary()

    async def _run_handlers(self, *, only_failed: bool) -> None:
        await run_handlers(self._require_cfg(), self._state.handlers, self._summary, only_failed=only_failed)

    # ---- helpers ----------------------------------------------------------------------------

    def _deadline(self) -> datetime:
        """When max age is reached (validation bounds it, so this never overflows)."""
        assert self._state.started_at is not None
        return self._state.started_at + timedelta(seconds=self._require_cfg().max_age_seconds)

    def _next_delay(self) -> float:
        """The schedule's next delay, counted from its origin, jittered."""
        st = self._state
        return poll_delay(
            self._require_cfg().poll_schedule, st.poll_count - st.schedule_origin, workflow.random().random()
        )

    def _shards_awaiting_results(self) -> list[ShardState]:
        return [s for s in self._state.shards if _awaits_results(s)]

    def _request_cancel(self, reason: str) -> None:
        if not self._state.cancel_requested:
            self._state.cancel_requested = True
            self._state.cancel_reason = reason

    def _fail(self, reason: str) -> None:
        self._state.status = "failed"
        self._state.failure_reason = reason

    def _ended_status(self) -> BatchStatus:
        status, self._state.failure_reason = ended_status(self._state)
        return status

    def _summary(self) -> BatchSummary:
        return summary_of(self._require_cfg(), self._state, workflow.info().workflow_id)

    def _publish(self) -> None:
        """Search attributes and Web UI details: what `temporal workflow list` and the UI show."""
        cfg = self._require_cfg()
        workflow.upsert_search_attributes(search_attribute_updates(cfg, self._state))
        workflow.set_current_details(details_markdown(cfg, self._state, self._next_poll_at))

    def _require_cfg(self) -> BatchConfig:
        if self._cfg is None:
            # Only a query can get here: the workflow failed (or has not yet started) on its input.
            raise ApplicationError(self._invalid_input or "the batch has not started yet", non_retryable=True)
        return self._cfg


class _ContinueAsNew(Exception):
    """Raised inside the poll loop to roll over to a new run with the state carried along."""

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
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from durabatch.models import (
        TERMINAL_BATCH_STATUSES,
        BatchInput,
        BatchState,
        BatchStatus,
        BatchSummary,
        BatchTotals,
        CancelInput,
        FinalizeInput,
        HandlerInput,
        HandlerResult,
        HandlerState,
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
    from workflows.schedule import poll_delay
    from workflows.validate import BatchConfig, InvalidBatchInput, decode_input, validate_input
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
_PROVIDER_TERMINAL = frozenset({"completed", "failed", "expired", "cancelled"})


def _awaits_results(shard: ShardState) -> bool:
    """Sent to the provider, results not ingested yet: the batch must poll on."""
    return shard.provider_batch_id is not None and not shard.ingested


def _cause_message(err: BaseException) -> str:
    cause = err.__cause__ if isinstance(err, ActivityError) and err.__cause__ else err
    return str(getattr(cause, "message", None) or cause)


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

    # ---- interface --------------------------------------------------------------------------

    @workflow.run
    async def run(self, raw: Any = None) -> BatchSummary:
        # Untyped on purpose: any JSON decodes, then a bad field fails the workflow naming it
        # (a typed input that does not decode would leave the workflow stuck; TEMPORAL.md).
        try:
            inp = decode_input(raw)
            self._cfg = validate_input(inp, workflow.info().workflow_id)
        except InvalidBatchInput as exc:
            self._invalid_input = str(exc)
            raise ApplicationError(str(exc), type="InvalidInput", non_retryable=True) from None
        if inp.state is not None:
            self._state = inp.state
        else:
            self._state.started_at = workflow.now()
            self._state.model = self._cfg.model
        self._publish()
        try:
            if self._state.status not in TERMINAL_BATCH_STATUSES:
                try:
                    await self._stage_submit_poll(inp)
                except asyncio.CancelledError:
                    # Temporal's own cancellation (Web UI button, `temporal workflow cancel`) means
                    # the same as the cancel signal: cancel at the provider and keep partial results.
                    self._request_cancel("cancelled through Temporal")
                    await self._stage_submit_poll(inp)
            return await self._complete()
        except _ContinueAsNew:
            await workflow.wait_condition(workflow.all_handlers_finished)
            workflow.continue_as_new(
                BatchInput(
                    batch_id=inp.batch_id,
                    provider=inp.provider,
                    endpoint=inp.endpoint,
                    model=inp.model,
                    requests_uri=inp.requests_uri,
                    poll_schedule_seconds=inp.poll_schedule_seconds,
                    max_age_seconds=inp.max_age_seconds,
                    handlers=inp.handlers,
                    metadata=inp.metadata,
                    handler_grace_seconds=inp.handler_grace_seconds,
                    state=self._state,
                )
            )

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
        if not st.staged:
            try:
                staged: StageResult = await self._activity(
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
                self._fail(f"staging failed: {_cause_message(err)}")
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

    async def _submit(self, shard: ShardState) -> bool:
        cfg = self._require_cfg()
        shard.state = "submitting"
        try:
            result: SubmitResult = await self._activity(
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
            self._fail(f"submitting shard {shard.shard} failed: {_cause_message(err)}")
            return False
        shard.provider_batch_id = result.provider_batch_id
        shard.input_file_id = result.input_file_id
        shard.ref_extra = result.ref_extra
        shard.state = "submitted"
        return True

    async def _poll_until_done(self) -> None:
        cfg = self._require_cfg()
        st = self._state
        assert st.started_at is not None
        deadline = st.started_at + timedelta(seconds=cfg.max_age_seconds)
        while self._shards_awaiting_results():
            if st.cancel_requested and not st.cancel_sent:
                await self._cancel_at_provider()
                st.cancel_sent = True
                # A cancelling provider batch ends soon: start the schedule over instead of
                # sleeping out a long late-schedule interval.
                st.schedule_origin = st.poll_count
            now = workflow.now()
            if now >= deadline:
                await self._expire()
                return
            delay = poll_delay(
                cfg.poll_schedule, st.poll_count - st.schedule_origin, workflow.random().random()
            )
            delay = min(delay, (deadline - now).total_seconds())
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
            polled: PollResult = await self._activity(
                "poll_shards",
                PollInput(batch_id=cfg.batch_id, provider=cfg.provider, shards=active),
                options.POLL,
                PollResult,
                summary=f"poll {cfg.provider}",
            )
        except ActivityError as err:
            # A provider outage: keep the batch and poll again on the schedule.
            workflow.logger.warning("poll failed, will retry on schedule: %s", _cause_message(err))
            return
        by_key = {(s.shard, s.round): s for s in polled.shards}
        for shard in st.shards:
            fresh = by_key.get((shard.shard, shard.round))
            if fresh is not None:
                shard.provider_status = fresh.provider_status
                shard.state = fresh.state
                shard.succeeded = fresh.succeeded
                shard.failed = fresh.failed
                shard.failure_code = fresh.failure_code
                shard.failure_message = fresh.failure_message
                shard.retry_later = fresh.retry_later
        if any(s.state in ("in_progress", "finalizing") for s in st.shards) and st.status == "submitted":
            st.status = "in_progress"
        for shard in st.shards:
            if shard.state in _PROVIDER_TERMINAL and not shard.ingested:
                if self._should_resubmit(shard):
                    await self._resubmit(shard)
                    continue
                st.status = "finalizing" if st.status not in ("cancelled", "expired") else st.status
                self._publish()
                await self._ingest(shard)

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
        assert st.started_at is not None
        shard.quota_retries += 1
        remaining = (st.started_at + timedelta(seconds=cfg.max_age_seconds) - workflow.now()).total_seconds()
        wait = min(
            poll_delay(cfg.poll_schedule, st.poll_count - st.schedule_origin, workflow.random().random()),
            remaining,
        )
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
        if workflow.now() >= st.started_at + timedelta(seconds=cfg.max_age_seconds):
            return
        await self._activity(
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
            ingested: IngestResult = await self._activity(
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
                f"reading results of shard {shard.shard} failed: {_cause_message(err)}"
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
            await self._activity(
                "cancel_provider_batches",
                CancelInput(batch_id=cfg.batch_id, provider=cfg.provider, shards=shards),
                options.CANCEL,
                None,
                summary=f"cancel at {cfg.provider}",
            )
        except ActivityError as err:
            workflow.logger.warning("provider cancel failed (ignored): %s", _cause_message(err))

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
            st.totals = await self._activity(
                "finalize_batch",
                FinalizeInput(
                    batch_id=cfg.batch_id,
                    unresolved_outcome=unresolved,
                    unresolved_reason=reason,
                    status=st.status,
                    failure_reason=st.failure_reason,
                ),
                options.FINALIZE,
                BatchTotals,
                summary="reconcile outcomes and totals",
            )
            self._publish()
        if not st.handlers:
            st.handlers = [
                HandlerState(index=i, type=h.type, target=h.url or h.name or "")
                for i, h in enumerate(cfg.handlers)
            ]
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
        cfg = self._require_cfg()
        wanted = ("failed",) if only_failed else ("pending", "failed")
        for state in self._state.handlers:
            if state.status not in wanted:
                continue
            spec = cfg.handlers[state.index]
            handler_input = HandlerInput(
                batch_id=cfg.batch_id,
                handler_index=state.index,
                handler=spec,
                idempotency_key=f"{workflow.info().workflow_id}:handler:{state.index}",
                summary=self._summary(),
            )
            state.attempts += 1
            try:
                if spec.type == "webhook":
                    await self._activity(
                        "deliver_webhook",
                        handler_input,
                        options.handler_preset(spec.max_attempts),
                        HandlerResult,
                        summary=f"POST webhook {state.target}",
                    )
                else:
                    await self._custom_handler(handler_input, spec.name or "", spec.task_queue)
                state.status = "succeeded"
                state.error = None
            except ActivityError as err:
                state.status = "failed"
                state.error = _cause_message(err)

    async def _custom_handler(self, handler_input: HandlerInput, name: str, task_queue: str | None) -> None:
        """A user's activity, guarded by the store so it never runs again after a success."""
        claim: HandlerResult = await self._activity(
            "claim_handler", handler_input, options.FINALIZE, HandlerResult, summary="check handler record"
        )
        if claim.status == "skipped":
            return
        await workflow.execute_activity(
            name,
            handler_input,
            task_queue=task_queue or workflow.info().task_queue,
            start_to_close_timeout=options.HANDLER.start_to_close,
            retry_policy=options.handler_preset(handler_input.handler.max_attempts).retry,
            summary=f"handler {name}",
        )
        await self._activity(
            "record_handler", handler_input, options.FINALIZE, None, summary="record handler success"
        )

    # ---- helpers ----------------------------------------------------------------------------

    async def _activity(
        self, name: str, arg: Any, preset: options.Preset, result_type: type | None, *, summary: str
    ) -> Any:
        return await workflow.execute_activity(
            name,
            arg,
            start_to_close_timeout=preset.start_to_close,
            heartbeat_timeout=preset.heartbeat,
            retry_policy=preset.retry,
            result_type=result_type,
            summary=summary,
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

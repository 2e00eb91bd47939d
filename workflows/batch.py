"""BatchWorkflow: the durable lifecycle of one batch (docs/architecture.md "One batch").

stage -> submit the shards (concurrently) -> sleep/poll on the schedule -> ingest each terminal shard ->
reconcile every request to one outcome -> completion handlers, each at most once after success.
Cancel (signal or Temporal cancellation) and max age end it early, keeping partial results.

The pieces: workflows/base.py (state, claim, submit, provider cancel), workflows/polling.py (the
poll loop, ingest, quota resubmits, expiry), workflows/handlers.py (completion handlers).

Deterministic by construction: no I/O, clocks or randomness but the workflow APIs; requests and
results never pass through here, only ids, counts and statuses.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any, Literal

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError, TemporalError

with workflow.unsafe.imports_passed_through():
    from durabatch import activity_api as api
    from durabatch.activity_api import FinalizeInput, StageInput, StageResult
    from durabatch.admission import GRANT_SIGNAL
    from durabatch.budget import cost_refusal
    from durabatch.contract import (
        BATCH_FAILED,
        INVALID_INPUT,
        TERMINAL_BATCH_STATUSES,
        InvalidBatchInput,
        decode_input,
        validate_input,
    )
    from durabatch.models import (
        BatchInput,
        BatchSummary,
        RedispatchResult,
        ShardState,
        StatusQuery,
    )
    from workflows import options
    from workflows.calls import cause_message, cause_type, execute, priority_of
    from workflows.handlers import initial_handler_states, run_handlers
    from workflows.views import status_of

from workflows.base import (
    CANCEL_POLL_DELAY_SECONDS,
    EXPIRY_GRACE,
    HISTORY_EVENTS_PER_RUN,
    MAX_QUOTA_RETRIES,
    NOT_FOUND_POLLS_LIMIT,
    PATCH_CLAIM_BATCH_ID,
    PATCH_CLIENT_STATE_REFUSED,
    PATCH_CLOSE_AS_OUTCOME,
    PATCH_EXPIRY_KEEPS_PARTIAL_RESULTS,
    PATCH_QUICK_POLL_AFTER_CANCEL,
    ContinueAsNewNow,
)
from workflows.realtime import BatchRealtime

__all__ = [
    "CANCEL_POLL_DELAY_SECONDS",
    "EXPIRY_GRACE",
    "HISTORY_EVENTS_PER_RUN",
    "MAX_QUOTA_RETRIES",
    "NOT_FOUND_POLLS_LIMIT",
    "PATCH_CLAIM_BATCH_ID",
    "PATCH_CLIENT_STATE_REFUSED",
    "PATCH_CLOSE_AS_OUTCOME",
    "PATCH_EXPIRY_KEEPS_PARTIAL_RESULTS",
    "PATCH_QUICK_POLL_AFTER_CANCEL",
    "BatchWorkflow",
]


#: A cancel reason is the user's words, kept on the batch: bounded so it cannot bloat history.
CANCEL_REASON_MAX_CHARS = 1024


def _clean_reason(reason: object) -> str:
    """Any signal payload as a short text that can always be encoded (a lone surrogate in it
    would make every later payload that carries it impossible to send)."""
    text = str(reason)[:CANCEL_REASON_MAX_CHARS]
    return text.encode("utf-8", "backslashreplace").decode("utf-8").replace("\x00", "")


@workflow.defn(name="BatchWorkflow")
class BatchWorkflow(BatchRealtime):
    """The lifecycle of one batch: its interface (run, cancel, status, redispatch_handlers) and phases."""

    @workflow.run
    async def run(self, raw: Any = None) -> BatchSummary:
        # Untyped on purpose: any JSON decodes, then a bad field fails the workflow naming it
        # (a typed input that does not decode fails every workflow task before our code runs).
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
        try:
            summary = await self._lifecycle(inp)
        except ContinueAsNewNow:
            await workflow.wait_condition(workflow.all_handlers_finished)
            # Inline requests are staged by now: only the carried state changes.
            workflow.continue_as_new(inp.model_copy(update={"state": self._state, "requests": None}))
        return self._close(summary)

    async def _lifecycle(self, inp: BatchInput) -> BatchSummary:
        """Stage, submit, poll, finalize, handlers; whatever goes wrong becomes a decision."""
        try:
            self._publish()
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
        except (ContinueAsNewNow, ApplicationError, asyncio.CancelledError):
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
        self._request_cancel(_clean_reason(reason) if reason else "cancelled by request")

    @workflow.signal(name="provider_event")
    def provider_event(self, payload: Any = None) -> None:
        # Any payload: the receiver (durabatch/hooks) sends what the provider's webhook named, but
        # nothing in it is trusted; the poll it triggers asks the provider itself.
        self._state.provider_events += 1
        self._poll_now = True

    @workflow.signal(name=GRANT_SIGNAL)
    def admission(self, payload: Any = None) -> None:
        # the account workflow granted queue room to one of this batch's shards
        key = payload.get("key") if isinstance(payload, dict) else None
        if isinstance(key, str) and key not in self._state.admitted:
            self._state.admitted.append(key)

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

    async def _stage_submit_poll(self, inp: BatchInput) -> None:
        cfg = self._require_cfg()
        st = self._state
        if not st.staged and workflow.patched(PATCH_CLAIM_BATCH_ID):
            await self._claim()
        if not st.staged:
            try:
                staged: StageResult = await execute(
                    api.stage_requests,
                    StageInput(
                        batch_id=cfg.batch_id,
                        workflow_id=workflow.info().workflow_id,
                        provider=cfg.provider,
                        endpoint=cfg.endpoint,
                        model=cfg.model,
                        requests=inp.requests,
                        requests_uri=inp.requests_uri,
                        metadata=cfg.metadata,
                        estimate_cost=cfg.max_cost_usd is not None,
                        max_requests_per_shard=cfg.max_requests_per_shard,
                        max_bytes_per_shard=cfg.max_bytes_per_shard,
                    ),
                    options.STAGE,
                    summary="stage requests into PostgreSQL",
                    priority=priority_of(cfg),
                )
            except ActivityError as err:
                self._fail(f"staging failed: {cause_message(err)}")
                return
            st.staged = True
            st.request_count = staged.request_count
            st.model = staged.model or st.model
            st.shards = [ShardState(shard=p.shard, request_count=p.request_count) for p in staged.shards]
            self._publish()
            if cfg.max_cost_usd is not None:
                refusal = cost_refusal(cfg.max_cost_usd, staged.cost_high_usd, st.model)
                if refusal is not None:
                    self._fail(refusal)
                    return
        if st.cancel_requested and not any(s.provider_batch_id for s in st.shards):
            # Nothing known to be sent: cancel locally. A submit interrupted by Temporal's
            # cancellation may still have created a provider batch; the cancel activity finds it.
            if any(s.state == "submitting" for s in st.shards):
                await self._cancel_at_provider(include_submitting=True)
            st.status = "cancelled"
            return
        if cfg.mode == "realtime":
            await self._run_realtime([s for s in st.shards if not s.ingested])
            await self._retry_rounds()
            return
        unsent = [s for s in st.shards if s.provider_batch_id is None]
        if not await self._submit_shards(unsent, skip_after_cancel=True):
            # Shards already submitted would run on, billed, for nothing.
            await self._cancel_at_provider()
            return
        if st.status == "pending":
            st.status = "submitted"
            self._publish()
        await self._poll_until_done()
        if st.fell_back:
            await self._finish_in_realtime()
        else:
            await self._retry_rounds()

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
                    api.finalize_batch,
                    FinalizeInput(
                        batch_id=cfg.batch_id,
                        unresolved_outcome=unresolved,
                        unresolved_reason=reason,
                        status=st.status,
                        failure_reason=st.failure_reason,
                        cancel_reason=st.cancel_reason,
                    ),
                    options.FINALIZE,
                    summary="reconcile outcomes and totals",
                    priority=priority_of(cfg),
                )
            except ActivityError as err:
                # Its retry budget is spent: the batch still ends (failed), handlers still run.
                self._fail(f"recording the outcomes failed: {cause_message(err)}")
            self._publish()
        for shard in st.shards:
            await self._release(shard)  # whatever room is still held (a batch that failed early)
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

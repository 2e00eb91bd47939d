"""The state a batch workflow keeps and the steps every phase uses: claim, submit, cancel at the
provider, the deadline and the next poll delay, what the status query and the Web UI show.

Workflow code (see workflows/batch.py): deterministic, no I/O but activities.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from durabatch import activity_api as api
    from durabatch.activity_api import AdmissionInput, CancelInput, ClaimInput, SubmitInput, SubmitResult
    from durabatch.admission import REFUSED_SIGNAL, RELEASE_SIGNAL, account_workflow_id
    from durabatch.contract import (
        BATCH_FAILED,
        BATCH_ID_IN_USE,
        BatchConfig,
    )
    from durabatch.models import BatchState, BatchStatus, BatchSummary, ShardState
    from workflows import options
    from workflows.calls import cause_message, cause_type, execute, priority_of
    from workflows.schedule import poll_delay
    from workflows.views import (
        details_markdown,
        ended_status,
        search_attribute_updates,
        summary_of,
    )

__all__ = ["BatchBase", "ContinueAsNewNow", "awaits_results"]


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
#: workflow.patched id: runs before it upserted the search attributes after every poll; now
#: unchanged values are not written again (one history event less per poll). A poll as a local
#: activity halved the events again but stalls the time-skipping test server over long schedules.
PATCH_LEAN_POLLS = "lean-polls"
#: workflow.patched id: runs before it resubmitted a quota-refused shard by moving it to round + 1
#: in place (`start_round`); now its requests become a new round as a retry round's do.
PATCH_QUOTA_AS_ROUND = "quota-as-round"
#: workflow.patched id: runs before it sent retryable failures again as retry rounds.
PATCH_RETRY_ROUNDS = "retry-rounds"
#: workflow.patched id: runs before it asked the provider account for queue room before a submit.
PATCH_ADMISSION = "admission"
#: After the provider cancel is sent, the next poll comes this soon (or the first delay if shorter).
CANCEL_POLL_DELAY_SECONDS = 5.0
#: Consecutive polls answered "not found" after which a provider batch counts as lost.
NOT_FOUND_POLLS_LIMIT = 5


def awaits_results(shard: ShardState) -> bool:
    """Sent to the provider, results not ingested yet: the batch must poll on."""
    return shard.provider_batch_id is not None and not shard.ingested


class ContinueAsNewNow(Exception):
    """Raised inside the poll loop to roll over to a new run with the state carried along."""


class BatchBase:
    """State and shared steps; BatchWorkflow adds the lifecycle on top (workflows/polling.py, batch.py)."""

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
        #: a provider said a batch ended (`provider_event`): poll now instead of at the next delay
        self._poll_now = False
        #: the search attribute values last upserted in this run (deterministic: replay rebuilds it)
        self._published_attributes: tuple[tuple[str, object], ...] | None = None

    async def _claim(self) -> None:
        """Own the batch id before anything is staged or sent; a batch id the store holds for
        another run fails this one at once, leaving that run's rows untouched."""
        cfg = self._require_cfg()
        info = workflow.info()
        try:
            await execute(
                api.claim_batch,
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
                summary="claim the batch id",
                priority=priority_of(cfg),
            )
        except ActivityError as err:
            # No finalize and no handlers: the rows in the store belong to the other run.
            message = cause_message(err)
            self._fail(message)
            self._publish()
            kind = BATCH_ID_IN_USE if cause_type(err) == BATCH_ID_IN_USE else BATCH_FAILED
            raise ApplicationError(message, type=kind, non_retryable=True) from None

    async def _submit(self, shard: ShardState) -> bool:
        """Submit one shard; False when it was not sent (a failure, or a cancel or max age while
        it waited for queue room), and the caller stops submitting."""
        cfg = self._require_cfg()
        if workflow.patched(PATCH_ADMISSION) and not await self._admit(shard):
            return False
        shard.state = "submitting"
        try:
            result: SubmitResult = await execute(
                api.submit_shard,
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
                summary=f"submit shard {shard.shard} to {cfg.provider}",
                priority=priority_of(cfg),
            )
        except ActivityError as err:
            self._fail(f"submitting shard {shard.shard} failed: {cause_message(err)}")
            await self._release(shard)
            return False
        shard.ref = result.ref
        shard.state = "submitted"
        return True

    async def _admit(self, shard: ShardState) -> bool:
        """Wait for room in the provider account's queue (durabatch/admission.py); False if the
        batch was cancelled or reached max age meanwhile (the room is given back)."""
        cfg = self._require_cfg()
        st = self._state
        if shard.admission_key is not None and shard.admission_key in st.admitted:
            return True  # granted before this run continued as new
        result = await execute(
            api.request_admission,
            AdmissionInput(
                batch_id=cfg.batch_id,
                workflow_id=workflow.info().workflow_id,
                provider=cfg.provider,
                model=st.model,
                shard=shard.shard,
                round=shard.round,
                priority=cfg.priority,
                tenant=cfg.tenant,
            ),
            options.CLAIM,
            summary=f"ask {cfg.provider} account for room for shard {shard.shard}",
            priority=priority_of(cfg),
        )
        if result.admitted:
            return True
        key = result.key
        shard.admission_key, shard.state, shard.admission_reason = key, "waiting_admission", result.reason
        self._publish()
        try:
            await workflow.wait_condition(
                lambda: key in st.admitted or st.cancel_requested,
                timeout=max(self._deadline() - workflow.now(), timedelta(milliseconds=1)),
                timeout_summary=f"room for shard {shard.shard}",
            )
        except TimeoutError:
            st.status = "expired"
            st.failure_reason = "max age reached while waiting for room in the provider account's queue"
        shard.admission_reason = None
        if key in st.admitted and st.status != "expired":
            return True
        shard.state = "pending"
        await self._release(shard)
        return False

    async def _release(self, shard: ShardState, *, refused_model: str | None = None) -> None:
        """Give the shard's queue room back (or report that the provider refused it for room)."""
        key = shard.admission_key
        if key is None:
            return
        shard.admission_key = None
        if key in self._state.admitted:
            self._state.admitted.remove(key)
        account = account_workflow_id(self._require_cfg().provider, workflow.info().task_queue)
        signal, payload = (
            (REFUSED_SIGNAL, {"key": key, "model": refused_model})
            if refused_model
            else (
                RELEASE_SIGNAL,
                {"key": key},
            )
        )
        try:
            await workflow.get_external_workflow_handle(account).signal(signal, payload)
        except Exception as err:  # the account workflow is gone: there is no room to give back
            workflow.logger.warning("giving back queue room failed (ignored): %s", err)

    async def _cancel_at_provider(self, *, include_submitting: bool = False) -> None:
        """Best effort: a failing provider cancel is logged and never blocks the batch."""
        cfg = self._require_cfg()
        shards = [
            s
            for s in self._state.shards
            if awaits_results(s) or (include_submitting and s.state == "submitting")
        ]
        if not shards:
            return
        try:
            await execute(
                api.cancel_provider_batches,
                CancelInput(batch_id=cfg.batch_id, provider=cfg.provider, shards=shards),
                options.CANCEL,
                summary=f"cancel at {cfg.provider}",
                priority=priority_of(cfg),
            )
        except ActivityError as err:
            workflow.logger.warning("provider cancel failed (ignored): %s", cause_message(err))

    def _deadline(self) -> datetime:
        """When max age is reached (validation bounds it, so this never overflows)."""
        assert self._state.started_at is not None
        return self._state.started_at + timedelta(seconds=self._require_cfg().max_age_seconds)

    def _next_delay(self) -> float:
        """The schedule's next delay, counted from its origin, jittered."""
        st = self._state
        cfg = self._require_cfg()
        return poll_delay(
            cfg.poll_schedule,
            st.poll_count - st.schedule_origin,
            workflow.random().random(),
            cfg.push_poll_stretch,
        )

    def _shards_awaiting_results(self) -> list[ShardState]:
        return [s for s in self._state.shards if awaits_results(s)]

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
        updates = search_attribute_updates(cfg, self._state)
        values = tuple((u.key.name, u.value) for u in updates)
        if not (values == self._published_attributes and workflow.patched(PATCH_LEAN_POLLS)):
            workflow.upsert_search_attributes(updates)
            self._published_attributes = values
        self._publish_details()

    def _publish_details(self) -> None:
        """The Web UI's current details. Not a command (the UI reads them with a query), so this
        may run at any point, e.g. once the next poll's time is known, without touching history."""
        cfg = self._require_cfg()
        workflow.set_current_details(details_markdown(cfg, self._state, self._next_poll_at, workflow.now()))

    def _require_cfg(self) -> BatchConfig:
        if self._cfg is None:
            # Only a query can get here: the workflow failed (or has not yet started) on its input.
            raise ApplicationError(self._invalid_input or "the batch has not started yet", non_retryable=True)
        return self._cfg

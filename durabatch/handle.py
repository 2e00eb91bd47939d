"""`BatchHandle`: one batch seen from a client: status, cancel, wait, redispatch, results."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from temporalio.client import WorkflowExecutionStatus, WorkflowFailureError, WorkflowHandle
from temporalio.service import RPCError, RPCStatusCode

from durabatch.client_errors import BatchEnded, BatchNotFound, BatchWorkflowFailed
from durabatch.contract import TERMINAL_BATCH_STATUSES, summary_from_failure
from durabatch.models import BatchSummary, ProviderBatchRef, ShardState, StatusQuery, workflow_id_for

if TYPE_CHECKING:
    from durabatch.client import BatchClient

__all__ = ["BatchHandle", "ProgressCallback", "is_terminal"]

ProgressCallback = Callable[[StatusQuery], Awaitable[None] | None]

#: A status query on a closed workflow needs a worker to replay it; without one, give up this soon
#: and answer from the workflow's result instead.
_QUERY_TIMEOUT = timedelta(seconds=5)


class BatchHandle:
    def __init__(self, client: BatchClient, batch_id: str) -> None:
        self._client = client
        self.batch_id = batch_id
        self.workflow_id = workflow_id_for(batch_id)
        self._handle: WorkflowHandle[Any, BatchSummary] = client.temporal.get_workflow_handle(
            self.workflow_id, result_type=BatchSummary
        )

    def _not_found(self) -> BatchNotFound:
        return BatchNotFound(f"no batch {self.batch_id!r} (workflow {self.workflow_id})")

    async def status(self) -> StatusQuery:
        """Live progress from the workflow; for an ended batch, its final state.

        An ended batch whose task queue has no worker cannot answer the query; its status is then
        built from the workflow's result. Raises BatchNotFound.
        """
        try:
            status: StatusQuery = await self._handle.query(
                "status", result_type=StatusQuery, rpc_timeout=_QUERY_TIMEOUT
            )
            return status
        except RPCError as exc:
            if exc.status == RPCStatusCode.NOT_FOUND:
                raise self._not_found() from None
            if exc.status != RPCStatusCode.DEADLINE_EXCEEDED or await self.is_running():
                raise
        return _status_from_summary(await self._final_summary())

    async def _final_summary(self) -> BatchSummary:
        """The ended workflow's summary: its result, or for a failed batch the summary carried in
        its `BatchFailed` failure (a failed batch closes its workflow as Failed)."""
        try:
            return await self._handle.result()
        except WorkflowFailureError as exc:
            summary = summary_from_failure(exc)
            if summary is None:
                raise
            return summary

    async def cancel(self, reason: str | None = None) -> None:
        """Ask the batch to cancel (at the provider too); results that already exist are kept.

        Raises BatchNotFound, or BatchEnded when the batch has already ended.
        """
        try:
            await self._handle.signal("cancel", {"reason": reason} if reason else {})
        except RPCError as exc:
            if exc.status != RPCStatusCode.NOT_FOUND:
                raise
            try:
                desc = await self._handle.describe()
            except RPCError as exc2:
                if exc2.status == RPCStatusCode.NOT_FOUND:
                    raise self._not_found() from None
                raise
            state = str((desc.search_attributes.get("DurabatchStatus") or ["?"])[0])
            workflow_status = desc.status.name.lower() if desc.status else "closed"
            raise BatchEnded(
                f"batch {self.batch_id!r} has already ended ({state}, workflow {workflow_status}); "
                "nothing to cancel",
                state,
            ) from None

    async def redispatch_handlers(self) -> Any:
        return await self._handle.execute_update("redispatch_handlers")

    async def wait(self, progress: ProgressCallback | None = None, interval: float = 1.0) -> BatchSummary:
        """Wait for the batch's summary, calling `progress` with the live status every `interval`
        seconds while it runs (the callback may be sync or async).

        Cancelling the wait leaves the batch running. Raises BatchNotFound, or BatchWorkflowFailed
        when the workflow ends without a summary (terminated, timed out, invalid input).
        """
        result = asyncio.ensure_future(self._final_summary())
        try:
            while not result.done():
                if progress is not None:
                    try:
                        await _call(progress, await self.status())
                    except RPCError as exc:
                        if exc.status == RPCStatusCode.NOT_FOUND:
                            raise self._not_found() from None
                        # otherwise a query can fail transiently while the worker restarts
                await asyncio.wait({result}, timeout=interval)
            try:
                return result.result()
            except WorkflowFailureError as exc:
                cause = exc.cause
                message = getattr(cause, "message", None) or str(cause or exc)
                raise BatchWorkflowFailed(f"batch {self.batch_id!r}: workflow failed: {message}") from exc
            except RPCError as exc:
                if exc.status == RPCStatusCode.NOT_FOUND:
                    raise self._not_found() from None
                raise
        finally:
            if not result.done():
                result.cancel()

    async def is_running(self) -> bool:
        desc = await self._handle.describe()
        return desc.status == WorkflowExecutionStatus.RUNNING

    async def results(
        self, outcome: str | None = None, *, all_rounds: bool = False
    ) -> AsyncIterator[dict[str, Any]]:
        """Each request's final result, in input order, streamed from PostgreSQL a chunk at a time.

        Rows have `line_no`, `custom_id`, `round`, `outcome`, `status_code`, `body`, `error`,
        `input_tokens`, `output_tokens`, `cached_tokens`, `cost_usd`, and `line`: the provider's
        result line exactly as received (None for results durabatch made, e.g. a missing result).
        `body` is decoded from that line without loss: `\u0000` and lone surrogates are the code
        points they name, a number no float can hold is a Decimal. `outcome` filters
        (succeeded, failed, expired, cancelled). With `all_rounds`, a retried request gives one
        row per round it ran in (round order), and `final` says which one is its result.
        Raises BatchNotFound if the store has no such batch.
        """
        from durabatch.results_format import result_body
        from durabatch.results_reader import open_results

        found = await open_results(await self._client.store(), self.batch_id, outcome, all_rounds=all_rounds)
        async for item in found.rows:
            item["body"] = result_body(found.provider, item)
            yield item


async def _call(progress: ProgressCallback, status: StatusQuery) -> None:
    maybe = progress(status)
    if maybe is not None:
        await maybe


def _status_from_summary(summary: BatchSummary) -> StatusQuery:
    counts = summary.counts
    return StatusQuery(
        batch_id=summary.batch_id,
        status=summary.status,
        provider=summary.provider,
        model=summary.model,
        counts=counts,
        shards=[
            ShardState(
                shard=i,
                ref=ProviderBatchRef(provider=summary.provider, provider_batch_id=pid),
                state=summary.status,
            )
            for i, pid in enumerate(summary.provider_batch_ids)
        ],
        input_tokens=summary.input_tokens,
        output_tokens=summary.output_tokens,
        cost_usd=summary.cost_usd,
        failure_reason=summary.failure_reason,
        handlers=summary.handlers,
    )


def is_terminal(status: str) -> bool:
    return status in TERMINAL_BATCH_STATUSES

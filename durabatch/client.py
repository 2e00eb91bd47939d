"""Typed Python client: start, cancel, status, wait and read results of batches.

client = await BatchClient.connect()                    # settings from the environment
handle = await client.start(BatchInput(batch_id="b1", provider="openai",
                                       endpoint="/v1/chat/completions", requests_uri="reqs.jsonl"))
summary = await handle.wait(progress=lambda s: print(s.counts))
async for row in handle.results():                     # streamed from PostgreSQL
    ...
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.service import RPCError, RPCStatusCode

from durabatch.models import (
    TERMINAL_BATCH_STATUSES,
    WORKFLOW_TYPE,
    BatchInput,
    BatchSummary,
    StatusQuery,
    workflow_id_for,
)
from durabatch.settings import Settings, load_settings
from durabatch.store.pool import Pool
from durabatch.store.results import iter_results
from durabatch.temporal import connect

__all__ = ["BatchClient", "BatchHandle", "BatchNotFound", "BatchRow"]

ProgressCallback = Callable[[StatusQuery], Awaitable[None] | None]


class BatchNotFound(LookupError):
    """No batch workflow with this id exists in the namespace."""


@dataclass(frozen=True)
class BatchRow:
    """A row of `durabatch list`, from Temporal visibility."""

    batch_id: str
    status: str
    provider: str
    model: str
    requests: int
    workflow_status: str
    start_time: Any


class BatchHandle:
    def __init__(self, client: BatchClient, batch_id: str) -> None:
        self._client = client
        self.batch_id = batch_id
        self.workflow_id = workflow_id_for(batch_id)
        self._handle: WorkflowHandle[Any, BatchSummary] = client.temporal.get_workflow_handle(
            self.workflow_id, result_type=BatchSummary
        )

    async def status(self) -> StatusQuery:
        """Live progress from the workflow (works on closed batches too, from their last state)."""
        try:
            status: StatusQuery = await self._handle.query("status", result_type=StatusQuery)
            return status
        except RPCError as exc:
            if exc.status == RPCStatusCode.NOT_FOUND:
                raise BatchNotFound(f"no batch {self.batch_id!r} (workflow {self.workflow_id})") from None
            raise

    async def cancel(self, reason: str | None = None) -> None:
        try:
            await self._handle.signal("cancel", {"reason": reason} if reason else {})
        except RPCError as exc:
            if exc.status == RPCStatusCode.NOT_FOUND:
                raise BatchNotFound(f"no running batch {self.batch_id!r}") from None
            raise

    async def redispatch_handlers(self) -> Any:
        return await self._handle.execute_update("redispatch_handlers")

    async def wait(self, progress: ProgressCallback | None = None, interval: float = 1.0) -> BatchSummary:
        """Wait for the batch's summary, calling `progress` with live status while it runs."""
        result = asyncio.ensure_future(self._handle.result())
        try:
            while not result.done():
                if progress is not None:
                    try:
                        maybe = progress(await self.status())
                        if asyncio.iscoroutine(maybe):
                            await maybe
                    except RPCError:
                        pass  # a query can fail transiently while the worker restarts
                await asyncio.wait({result}, timeout=interval)
            return result.result()
        finally:
            if not result.done():
                result.cancel()

    async def is_running(self) -> bool:
        desc = await self._handle.describe()
        return desc.status == WorkflowExecutionStatus.RUNNING

    async def results(self, outcome: str | None = None) -> AsyncIterator[dict[str, Any]]:
        """Each request's final result, in input order, streamed from PostgreSQL."""
        pool = await self._client.store()
        async for row in iter_results(pool, self.batch_id, outcome=outcome):
            yield dict(row)


class BatchClient:
    def __init__(self, temporal: Client, settings: Settings, database_url: str | None = None) -> None:
        self.temporal = temporal
        self.settings = settings
        self._database_url = database_url
        self._pool: Pool | None = None

    @classmethod
    async def connect(cls, settings: Settings | None = None, database_url: str | None = None) -> BatchClient:
        settings = settings or load_settings()
        return cls(await connect(settings), settings, database_url)

    async def start(self, inp: BatchInput) -> BatchHandle:
        """Start a batch; starting the same batch_id again raises (duplicate starts are rejected)."""
        assert inp.batch_id, "batch_id is required"
        count = len(inp.requests) if inp.requests is not None else None
        summary = f"{inp.provider} {inp.model or ''} batch {inp.batch_id}".replace("  ", " ")
        if count is not None:
            summary += f" ({count} requests)"
        await self.temporal.start_workflow(
            WORKFLOW_TYPE,
            inp,
            id=workflow_id_for(inp.batch_id),
            task_queue=self.settings.task_queue,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
            static_summary=summary,
            static_details=f"provider: {inp.provider}\nendpoint: {inp.endpoint}\nmodel: {inp.model or '-'}\n"
            f"requests: {inp.requests_uri or f'{count} inline'}",
        )
        return self.get(inp.batch_id)

    def get(self, batch_id: str) -> BatchHandle:
        return BatchHandle(self, batch_id)

    async def list(
        self, status: str | None = None, provider: str | None = None, limit: int = 100
    ) -> list[BatchRow]:
        query = f"WorkflowType = '{WORKFLOW_TYPE}'"
        if status:
            query += f" AND DurabatchStatus = '{_quote(status)}'"
        if provider:
            query += f" AND DurabatchProvider = '{_quote(provider)}'"
        rows: list[BatchRow] = []
        async for wf in self.temporal.list_workflows(query, limit=limit):
            attrs = wf.search_attributes
            rows.append(
                BatchRow(
                    batch_id=wf.id.removeprefix("batch-"),
                    status=str((attrs.get("DurabatchStatus") or ["?"])[0]),
                    provider=str((attrs.get("DurabatchProvider") or ["?"])[0]),
                    model=str((attrs.get("DurabatchModel") or ["-"])[0]),
                    requests=int((attrs.get("DurabatchRequests") or [0])[0]),  # type: ignore[arg-type]
                    workflow_status=wf.status.name if wf.status else "?",
                    start_time=wf.start_time,
                )
            )
        return rows

    async def store(self) -> Pool:
        if self._pool is None:
            from durabatch.store import create_pool
            from durabatch.store.embedded import embedded_database_url

            url = (
                self._database_url
                or self.settings.database_url
                or embedded_database_url(self.settings.data_dir)
            )
            self._pool = await create_pool(url, min_size=1, max_size=4)
        return self._pool

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None


def _quote(value: str) -> str:
    return value.replace("'", "")


def is_terminal(status: str) -> bool:
    return status in TERMINAL_BATCH_STATUSES

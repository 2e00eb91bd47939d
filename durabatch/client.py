"""Typed Python client: start, cancel, status, wait and read results of batches.

    async with await BatchClient.connect() as client:      # settings from the environment
        handle = await client.start(batch_id="b1", provider="openai",
                                    endpoint="/v1/chat/completions", requests_path="reqs.jsonl")
        summary = await handle.wait(progress=lambda s: print(s.counts))
        async for row in handle.results():                  # streamed from PostgreSQL
            ...

Errors:

    BatchError
    ├── BatchNotFound        no batch with this id (in Temporal, or in the store for results())
    ├── BatchAlreadyExists   start() with a batch_id already used
    ├── InvalidRequestsFile  start(requests_path=...): a line or the file refused (path, line, field);
    │                        nothing was started and the batch id stays free
    ├── StoreNotConfigured   no database setting and no running `durabatch dev` on the data dir
    ├── BatchEnded           cancel() of a batch that has already ended
    └── BatchWorkflowFailed  wait(): the workflow failed without a summary (invalid input, a used
                             batch id, terminated, cancelled through Temporal); a batch that
                             ended "failed" closes as Failed too but wait() returns its summary
Temporal's RPCError (server unreachable) propagates unchanged.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from types import TracebackType
from typing import Any

from temporalio.client import (
    Client,
    Interceptor,
    WorkflowExecutionStatus,
    WorkflowFailureError,
    WorkflowHandle,
)
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from durabatch.contract import (
    BATCH_ID_PATTERN,
    BATCH_ID_RE,
    TERMINAL_BATCH_STATUSES,
    BatchConfig,
    summary_from_failure,
    validate_input,
)
from durabatch.dblocate import DatabaseNotConfigured, find_database_url
from durabatch.models import (
    WORKFLOW_TYPE,
    BatchInput,
    BatchSummary,
    ShardState,
    StatusQuery,
    workflow_id_for,
)
from durabatch.settings import Settings, load_settings
from durabatch.store.pool import Pool
from durabatch.store.results import iter_results
from durabatch.temporal import connect

__all__ = [
    "BatchAlreadyExists",
    "BatchClient",
    "BatchEnded",
    "BatchError",
    "BatchHandle",
    "BatchNotFound",
    "BatchRow",
    "BatchWorkflowFailed",
    "InvalidRequestsFile",
    "ProgressCallback",
    "StoreNotConfigured",
]

ProgressCallback = Callable[[StatusQuery], Awaitable[None] | None]

#: A status query on a closed workflow needs a worker to replay it; without one, give up this soon
#: and answer from the workflow's result instead.
_QUERY_TIMEOUT = timedelta(seconds=5)


class BatchError(Exception):
    """Base of the client's errors."""


class BatchNotFound(BatchError, LookupError):
    """No batch with this id exists (in the namespace, or in the store for `results()`)."""


class BatchAlreadyExists(BatchError):
    """A batch with this id was started before; batch ids are never reused."""


class BatchEnded(BatchError):
    """The batch has already ended, so it can no longer be cancelled."""

    def __init__(self, message: str, status: str) -> None:
        super().__init__(message)
        self.status = status


class BatchWorkflowFailed(BatchError):
    """The batch's workflow failed, was terminated or timed out instead of returning a summary."""


class InvalidRequestsFile(BatchError, ValueError):
    """A requests file refused before its batch started; the message names the file's absolute
    path, the line and the field (`line_no` is None for a whole-file problem)."""

    def __init__(self, message: str, line_no: int | None = None) -> None:
        super().__init__(message)
        self.line_no = line_no


class StoreNotConfigured(BatchError, LookupError):
    """No DURABATCH_DATABASE_URL and no running `durabatch dev` on the data dir."""


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

    async def results(self, outcome: str | None = None) -> AsyncIterator[dict[str, Any]]:
        """Each request's final result, in input order, streamed from PostgreSQL a chunk at a time.

        Rows have `line_no`, `custom_id`, `round`, `outcome`, `status_code`, `body`, `error`,
        `input_tokens`, `output_tokens`, `cached_tokens`, `cost_usd`, and `line`: the provider's
        result line exactly as received (None for results durabatch made, e.g. a missing result).
        `body` is decoded from that line without loss: `\u0000` and lone surrogates are the code
        points they name, a number no float can hold is a Decimal. `outcome` filters
        (succeeded, failed, expired, cancelled). Raises BatchNotFound if the store has no such batch.
        """
        from durabatch.results_format import result_body
        from durabatch.store import batches

        pool = await self._client.store()
        batch = await batches.get_batch(pool, self.batch_id)
        if batch is None:
            raise BatchNotFound(f"no batch {self.batch_id!r} in the store")
        provider = str(batch["provider"])
        async for row in iter_results(pool, self.batch_id, outcome=outcome):
            item = dict(row)
            item["body"] = result_body(provider, item)
            yield item


class BatchClient:
    """Batches on one Temporal namespace and their results in one PostgreSQL database.

    Use as `async with await BatchClient.connect() as client:` or call `close()`.
    """

    def __init__(self, temporal: Client, settings: Settings, database_url: str | None = None) -> None:
        self.temporal = temporal
        self.settings = settings
        self._database_url = database_url
        self._pool: Pool | None = None

    @classmethod
    async def connect(
        cls,
        settings: Settings | None = None,
        database_url: str | None = None,
        *,
        interceptors: Sequence[Interceptor] | None = None,
        require_store: bool = True,
    ) -> BatchClient:
        """Connect to Temporal (settings from the environment by default).

        The store is found as the CLI finds it: `database_url`, else DURABATCH_DATABASE_URL, else
        the embedded PostgreSQL of a `durabatch dev` running on the data dir; with none of them this
        raises StoreNotConfigured before connecting anything (it never starts a database). With
        `require_store=False` (status, list, cancel need only Temporal) that error comes from the
        first call that needs the store instead. PostgreSQL itself is connected lazily.

        With `DURABATCH_OTLP_ENDPOINT` set and no `interceptors` given, client calls are traced, so a
        batch's `StartWorkflow` span is the root of its trace."""
        settings = settings or load_settings()
        try:
            database_url = find_database_url(settings, database_url)
        except DatabaseNotConfigured as exc:
            if require_store:
                raise StoreNotConfigured(str(exc)) from None
            database_url = None
        if interceptors is None:
            interceptors = []
            if settings.otlp_endpoint.strip():
                from durabatch.telemetry.interceptors import (
                    tracing_interceptors,  # OpenTelemetry only when used
                )

                interceptors = tracing_interceptors(settings)
        return cls(await connect(settings, interceptors=interceptors), settings, database_url)

    async def __aenter__(self) -> BatchClient:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def start(
        self,
        inp: BatchInput | None = None,
        /,
        *,
        request_count: int | None = None,
        requests_path: str | Path | None = None,
        **fields: Any,
    ) -> BatchHandle:
        """Start a batch from a `BatchInput` or its fields (`start(batch_id=..., provider=...)`).

        `requests_path` names a local JSONL file: every line is validated (the worker's own rules)
        and streamed into the store before the workflow starts, so a bad file raises
        InvalidRequestsFile (absolute path, line, field) and leaves no batch behind - fix the file
        and start again with the same batch_id - and the worker needs no access to the file.
        A relative `requests_path` or local `requests_uri` is taken from the current directory
        (a `requests_uri` is read by the worker, within its DURABATCH_REQUESTS_ROOTS).

        `request_count`, when the caller knows it for a `requests_uri` batch, goes into the summary
        the Web UI shows from the start (inline and staged requests are counted here).
        Raises BatchAlreadyExists if the batch_id was used before (ids are never reused), ValueError
        (InvalidBatchInput) for a field that breaks the input contract.
        """
        if inp is None:
            inp = BatchInput(**fields)
        elif fields:
            inp = inp.model_copy(update=fields)
        if not inp.batch_id or not BATCH_ID_RE.match(inp.batch_id):
            raise ValueError(f"batch_id must be {BATCH_ID_PATTERN}, got {inp.batch_id!r}")
        if inp.requests_uri and _is_local_path(inp.requests_uri):
            inp = inp.model_copy(update={"requests_uri": str(Path(inp.requests_uri).resolve())})
        path: Path | None = None
        if requests_path is not None:
            if inp.requests is not None or inp.requests_uri:
                raise ValueError("give one of requests_path, requests or requests_uri")
            from durabatch.staging import STAGED_URI

            path = Path(requests_path).resolve()
            inp = inp.model_copy(update={"requests_uri": STAGED_URI})
        cfg = validate_input(inp, workflow_id_for(inp.batch_id or ""))
        if path is not None:
            request_count = await self._stage_file(cfg, path)
        count = len(inp.requests) if inp.requests is not None else request_count
        summary = f"{inp.provider} {inp.model or ''} batch {inp.batch_id}".replace("  ", " ")
        if count is not None:
            summary += f" ({count} requests)"
        try:
            await self._start(inp, cfg.batch_id, summary, count)
        except WorkflowAlreadyStartedError:
            raise BatchAlreadyExists(f"batch {cfg.batch_id!r} already exists") from None
        return self.get(cfg.batch_id)

    async def _stage_file(self, inp: BatchConfig, path: Path) -> int:
        """Validate `path` and COPY it into the store for `inp`'s batch; returns the request count."""
        from durabatch.requests_file import InvalidRequestLine, InvalidRequests
        from durabatch.staging import StagedElsewhere, stage_client_file

        if not path.is_file():
            raise InvalidRequestsFile(f"{path}: no such file")
        if await self._workflow_exists(inp.batch_id):
            raise BatchAlreadyExists(f"batch {inp.batch_id!r} already exists")
        pool = await self.store()
        try:
            outcome = await stage_client_file(
                pool,
                batch_id=inp.batch_id,
                workflow_id=workflow_id_for(inp.batch_id),
                provider=inp.provider,
                endpoint=inp.endpoint,
                model=inp.model,
                metadata=inp.metadata,
                path=path,
            )
        except InvalidRequestLine as exc:
            raise InvalidRequestsFile(f"{path}:{exc.line_no}: {_line_detail(exc)}", exc.line_no) from None
        except InvalidRequests as exc:
            raise InvalidRequestsFile(f"{path}: {exc}") from None
        except StagedElsewhere as exc:
            raise BatchAlreadyExists(str(exc)) from None
        except OSError as exc:
            raise InvalidRequestsFile(f"{path}: cannot read ({exc.strerror})") from None
        return outcome.request_count

    async def _workflow_exists(self, batch_id: str) -> bool:
        try:
            await self.temporal.get_workflow_handle(workflow_id_for(batch_id)).describe()
        except RPCError as exc:
            if exc.status == RPCStatusCode.NOT_FOUND:
                return False
            raise
        return True

    async def _start(self, inp: BatchInput, batch_id: str, summary: str, count: int | None) -> None:
        await self.temporal.start_workflow(
            WORKFLOW_TYPE,
            inp,
            id=workflow_id_for(batch_id),
            task_queue=self.settings.task_queue,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
            static_summary=summary,
            static_details=f"provider: {inp.provider}\nendpoint: {inp.endpoint}\nmodel: {inp.model or '-'}\n"
            f"requests: {_requests_source(inp, count)}",
        )

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

            try:
                url = find_database_url(self.settings, self._database_url)
            except DatabaseNotConfigured as exc:
                raise StoreNotConfigured(str(exc)) from None
            pool = await create_pool(url, min_size=1, max_size=4)
            try:
                async with pool.acquire() as conn:
                    if await conn.fetchval("SELECT to_regclass('requests')") is None:
                        # A database no worker has set up yet (or a stack still starting its
                        # worker): create the schema as a worker would, under the same lock.
                        from durabatch.store import migrate

                        await migrate(conn)
            except BaseException:
                await pool.close()
                raise
            self._pool = pool
        return self._pool

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None


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
            ShardState(shard=i, provider_batch_id=pid, state=summary.status)
            for i, pid in enumerate(summary.provider_batch_ids)
        ],
        input_tokens=summary.input_tokens,
        output_tokens=summary.output_tokens,
        cost_usd=summary.cost_usd,
        failure_reason=summary.failure_reason,
        handlers=summary.handlers,
    )


def _quote(value: str) -> str:
    return value.replace("'", "")


def is_terminal(status: str) -> bool:
    return status in TERMINAL_BATCH_STATUSES


def _is_local_path(uri: str) -> bool:
    return "://" not in uri and not uri.startswith("store:")


def _line_detail(exc: Any) -> str:
    """An InvalidRequestLine's message without its "line N" prefix (the caller writes FILE:N)."""
    field = f"field {exc.field!r}: " if exc.field else ""
    return f"{field}{exc.reason}"


def _requests_source(inp: BatchInput, count: int | None) -> str:
    """Where a batch's requests come from, as the Web UI's static details say it."""
    if inp.requests is not None:
        return f"{count} inline"
    if inp.requests_uri == "store:":
        return f"staged by the client ({count} requests)"
    return f"{inp.requests_uri} ({count} requests)" if count is not None else str(inp.requests_uri)

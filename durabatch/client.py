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
    ├── CostLimitExceeded    start(requests_path=..., max_cost_usd=...): the estimate is above the
    │                        limit; nothing was staged or started
    ├── StoreNotConfigured   no database setting and no running `durabatch dev` on the data dir
    ├── BatchEnded           cancel() of a batch that has already ended
    └── BatchWorkflowFailed  wait(): the workflow failed without a summary (invalid input, a used
                             batch id, terminated, cancelled through Temporal); a batch that
                             ended "failed" closes as Failed too but wait() returns its summary
Temporal's RPCError (server unreachable) propagates unchanged.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from temporalio.client import (
    Client,
    Interceptor,
)
from temporalio.common import Priority, WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from durabatch.client_errors import (
    BatchAlreadyExists,
    BatchEnded,
    BatchError,
    BatchNotFound,
    BatchWorkflowFailed,
    CostLimitExceeded,
    InvalidRequestsFile,
    StoreNotConfigured,
)
from durabatch.contract import (
    BATCH_ID_PATTERN,
    BATCH_ID_RE,
    BatchConfig,
    validate_input,
)
from durabatch.dblocate import DatabaseNotConfigured, find_database_url
from durabatch.handle import BatchHandle, ProgressCallback, is_terminal
from durabatch.models import (
    WORKFLOW_TYPE,
    BatchInput,
    workflow_id_for,
)
from durabatch.providers.formats import model_of, normalize_line
from durabatch.settings import Settings, load_settings
from durabatch.store.pool import Pool
from durabatch.temporal import connect

if TYPE_CHECKING:
    from durabatch.staging import StagingOutcome

__all__ = [  # the client's public surface: errors and the handle are re-exported from here
    "BatchAlreadyExists",
    "BatchClient",
    "BatchEnded",
    "BatchError",
    "BatchHandle",
    "BatchNotFound",
    "BatchRow",
    "BatchWorkflowFailed",
    "CostLimitExceeded",
    "InvalidRequestsFile",
    "ProgressCallback",
    "StoreNotConfigured",
    "is_terminal",
]


@dataclass(frozen=True)
class BatchRow:
    """A row of `durabatch list`, from Temporal visibility."""

    batch_id: str
    status: str
    provider: str
    #: None when the batch names no model (its lines do, or the provider's default applies)
    model: str | None
    requests: int
    workflow_status: str
    start_time: Any


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
        model = inp.model or _inline_model(cfg.provider, cfg.endpoint, inp.requests)
        if path is not None:
            request_count, model = await self._stage_file(cfg, path)
        count = len(inp.requests) if inp.requests is not None else request_count
        summary = start_summary(cfg.provider, cfg.batch_id, model, count)
        try:
            await self._start(inp, cfg.batch_id, summary, count, model)
        except WorkflowAlreadyStartedError:
            raise BatchAlreadyExists(f"batch {cfg.batch_id!r} already exists") from None
        return self.get(cfg.batch_id)

    async def _stage_file(self, inp: BatchConfig, path: Path) -> tuple[int, str | None]:
        """Validate `path` and COPY it into the store for `inp`'s batch; returns the request count
        and the model (the batch's, or the one the lines name)."""
        from durabatch.requests_file import (
            DEFAULT_LIMITS,
            InvalidRequestLine,
            InvalidRequests,
            capped,
            located,
        )
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
                accept=functools.partial(self._within_budget, inp),
                limits=capped(
                    DEFAULT_LIMITS[inp.provider], inp.max_requests_per_shard, inp.max_bytes_per_shard
                ),
            )
        except InvalidRequestLine as exc:
            raise InvalidRequestsFile(located(path, exc), exc.line_no) from None
        except InvalidRequests as exc:
            raise InvalidRequestsFile(located(path, exc)) from None
        except StagedElsewhere as exc:
            raise BatchAlreadyExists(str(exc)) from None
        except OSError as exc:
            raise InvalidRequestsFile(f"{path}: cannot read ({exc.strerror})") from None
        return outcome.request_count, outcome.model

    def _within_budget(self, cfg: BatchConfig, outcome: StagingOutcome) -> None:
        """The cost limit, checked on the staged file before it is committed (the workflow checks
        it again after staging, for starts that bypass this client)."""
        from durabatch.budget import cost_refusal
        from durabatch.providers.prices import price_of

        if cfg.max_cost_usd is None or outcome.estimate is None:
            return
        cost = outcome.estimate.cost(price_of(cfg.provider, outcome.model, self.settings.prices_file))
        refusal = cost_refusal(cfg.max_cost_usd, float(cost.high_usd) if cost else None, outcome.model)
        if refusal is not None:
            raise CostLimitExceeded(refusal)

    async def _workflow_exists(self, batch_id: str) -> bool:
        try:
            await self.temporal.get_workflow_handle(workflow_id_for(batch_id)).describe()
        except RPCError as exc:
            if exc.status == RPCStatusCode.NOT_FOUND:
                return False
            raise
        return True

    async def _start(
        self, inp: BatchInput, batch_id: str, summary: str, count: int | None, model: str | None
    ) -> None:
        await self.temporal.start_workflow(
            WORKFLOW_TYPE,
            inp,
            id=workflow_id_for(batch_id),
            task_queue=self.settings.task_queue,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
            static_summary=summary,
            # the batch's workflow tasks get the priority its activities get (workflows/calls.py)
            priority=Priority(priority_key=inp.priority, fairness_key=inp.tenant),
            static_details=f"provider: {inp.provider}\nendpoint: {inp.endpoint}\nmodel: {model or '-'}\n"
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
                    model=str(attrs["DurabatchModel"][0]) if attrs.get("DurabatchModel") else None,
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


def _quote(value: str) -> str:
    return value.replace("'", "")


def _is_local_path(uri: str) -> bool:
    return "://" not in uri and not uri.startswith("store:")


def start_summary(provider: str, batch_id: str, model: str | None, count: int | None) -> str:
    """The one line the Web UI shows for a batch from its start (the workflow's static summary):
    provider, model and request count, each left out when the client cannot know it yet."""
    what = f"{provider} batch {batch_id}"
    facts = [f"{count} requests" if count is not None else None, f"model {model}" if model else None]
    told = ", ".join(f for f in facts if f)
    return f"{what}: {told}" if told else what


def _inline_model(provider: str, endpoint: str, items: list[dict[str, Any]] | None) -> str | None:
    """The model inline requests name (the first one's; the worker checks that all agree)."""
    if not items:
        return None
    try:
        return model_of(provider, normalize_line(items[0], 1, provider, endpoint).body)
    except ValueError:  # a bad line or endpoint: the worker refuses it, naming it; the summary has no model
        return None


def _requests_source(inp: BatchInput, count: int | None) -> str:
    """Where a batch's requests come from, as the Web UI's static details say it."""
    if inp.requests is not None:
        return f"{count} inline"
    if inp.requests_uri == "store:":
        return f"staged by the client ({count} requests)"
    return f"{inp.requests_uri} ({count} requests)" if count is not None else str(inp.requests_uri)

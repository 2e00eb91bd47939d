"""Pydantic models shared by the workflow, the activities and the client.

They are small by design (ids, counts, statuses): they travel in Temporal payloads and history.
Requests and results live in PostgreSQL. Every model tolerates extra keys so that fields can be
added without breaking batches already running.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, computed_field, model_validator

# the names other languages and the `temporal` CLI rely on live with the other words
from durabatch.vocabulary import SEARCH_ATTRIBUTES, WORKFLOW_TYPE, sweep_workflow_id, workflow_id_for

__all__ = [
    "SEARCH_ATTRIBUTES",
    "WORKFLOW_TYPE",
    "BatchInput",
    "BatchState",
    "BatchStatus",
    "BatchSummary",
    "BatchTotals",
    "HandlerSpec",
    "HandlerState",
    "OutcomeCounts",
    "ProviderBatchRef",
    "RealtimeLimits",
    "RedispatchResult",
    "ShardState",
    "StatusQuery",
    "SweepTotals",
    "SweepWorkflowInput",
    "sweep_workflow_id",
    "workflow_id_for",
]

BatchStatus = Literal[
    "pending", "submitted", "in_progress", "finalizing", "completed", "cancelled", "expired", "failed"
]
#: The contract's constants, once importable from here: `durabatch.contract` is their home now.
_FROM_CONTRACT = {"DEFAULT_MAX_AGE_SECONDS", "DEFAULT_POLL_SCHEDULE", "INLINE_REQUESTS_MAX_BYTES"}
_FROM_CONTRACT |= {"PROVIDERS", "TERMINAL_BATCH_STATUSES"}


def __getattr__(name: str) -> Any:
    # Lazy, because durabatch.contract imports this module.
    if name in _FROM_CONTRACT:
        from durabatch import contract

        return getattr(contract, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


#: A number given as a number: `true` or `"30"` is a client's mistake, not 1 or 30 seconds.
_StrictFloat = Annotated[float, Field(strict=True)]
_StrictInt = Annotated[int, Field(strict=True)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore")


class HandlerSpec(_Model):
    """A completion handler: a signed webhook, or any activity by name on any task queue."""

    type: Literal["webhook", "activity"]
    url: str | None = None
    #: name of the environment variable on the worker holding the webhook's signing secret
    secret_env: str | None = None
    name: str | None = None
    task_queue: str | None = None
    #: attempts before the handler is reported failed (it can then be redispatched); default 5
    max_attempts: _StrictInt | None = None


class RealtimeLimits(_Model):
    """How fast real-time mode may go; unset values come from the worker's settings
    (`DURABATCH_<PROVIDER>_RPM`, `_TPM`) and a default concurrency."""

    concurrency: _StrictInt | None = None
    rpm: _StrictInt | None = None
    tpm: _StrictInt | None = None


class OutcomeCounts(_Model):
    total: int = 0
    succeeded: int = 0
    failed: int = 0
    expired: int = 0
    cancelled: int = 0
    pending: int = 0
    #: requests that needed more than one round (each attempt keeps its result row)
    retried: int = 0
    #: requests finished through the provider's synchronous API instead of its batch API
    realtime: int = 0


class ProviderBatchRef(_Model):
    """Where a submitted provider batch lives: what every provider call about it needs. Small and
    serialisable: the workflow keeps it in its shard state and hands it back to the activities."""

    provider: str
    provider_batch_id: str
    input_file_id: str | None = None
    extra: dict[str, str] = Field(default_factory=dict)


def _ref_from_legacy_keys(data: Any) -> Any:
    """Histories and continued runs recorded before the ref was one field hold it as flat keys
    (and no provider name: nothing routes by a ref's provider, the activity's input names it)."""
    if not isinstance(data, dict) or data.get("ref") is not None or not data.get("provider_batch_id"):
        return data
    data = dict(data)
    data["ref"] = {
        "provider": data.get("provider") or "",
        "provider_batch_id": data["provider_batch_id"],
        "input_file_id": data.get("input_file_id"),
        "extra": data.get("ref_extra") or {},
    }
    return data


class CarriesRef(_Model):
    """A model holding one ProviderBatchRef; it also writes the ref's flat legacy keys so that a
    worker of the previous release reads it during a rolling deploy."""

    ref: ProviderBatchRef | None = None

    @model_validator(mode="before")
    @classmethod
    def _legacy_ref(cls, data: Any) -> Any:
        return _ref_from_legacy_keys(data)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def provider_batch_id(self) -> str | None:
        return self.ref.provider_batch_id if self.ref else None

    @computed_field  # type: ignore[prop-decorator]
    @property
    def input_file_id(self) -> str | None:
        return self.ref.input_file_id if self.ref else None

    @computed_field  # type: ignore[prop-decorator]
    @property
    def ref_extra(self) -> dict[str, str]:
        return dict(self.ref.extra) if self.ref else {}


class ShardState(CarriesRef):
    """One provider batch of one shard in one round."""

    shard: int
    round: int = 0
    request_count: int = 0
    provider_status: str | None = None
    state: str = "pending"
    succeeded: int = 0
    failed: int = 0
    ingested: bool = False
    failure_code: str | None = None
    failure_message: str | None = None
    #: the provider failed this batch for quota (OpenAI token_limit_exceeded): submit it again later
    retry_later: bool = False
    quota_retries: int = 0
    #: set by poll_shards when the provider answered "not found" for this batch
    not_found: bool = False
    #: consecutive polls answered "not found" (the workflow gives up on the batch after a few)
    not_found_polls: int = 0
    #: usage of the results ingested so far (the status query's "tokens and cost so far")
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float | None = None
    #: the room this shard holds in its account's queue (durabatch/admission.py), until it ends
    admission_key: str | None = None
    #: while `state` is "waiting_admission": its place in line and the limit in the way
    admission_reason: str | None = None

    def apply_poll(self, fresh: ShardState) -> None:
        """Take what a poll learnt about this provider batch (`poll_shards` returns updated copies)."""
        for name in _POLLED_FIELDS:
            setattr(self, name, getattr(fresh, name))
        self.not_found_polls = 0

    def require_ref(self) -> ProviderBatchRef:
        """The ref of a shard the workflow sent; asking for it before is a bug in the caller."""
        if self.ref is None:
            raise ValueError(f"shard {self.shard} (round {self.round}) has not been submitted")
        return self.ref


#: What `poll_shards` learns about a provider batch; everything else in ShardState is the workflow's.
_POLLED_FIELDS = (
    "provider_status",
    "state",
    "succeeded",
    "failed",
    "failure_code",
    "failure_message",
    "retry_later",
)


class HandlerState(_Model):
    index: int
    type: str
    target: str
    status: Literal["pending", "succeeded", "failed", "skipped"] = "pending"
    #: times the workflow dispatched it (the first run, then each redispatch)
    attempts: int = 0
    #: the delivery attempts each dispatch may make (its retry policy); None in older histories
    max_attempts: int | None = None
    error: str | None = None


class BatchState(_Model):
    """Everything a run carries into the next one across continue-as-new."""

    started_at: datetime | None = None
    status: BatchStatus = "pending"
    staged: bool = False
    model: str | None = None
    request_count: int = 0
    shards: list[ShardState] = Field(default_factory=list)
    poll_count: int = 0
    #: `provider_event` signals received (each makes the next poll come at once)
    provider_events: int = 0
    #: retry rounds started (the first round is not one of them), up to max_rounds - 1
    retry_rounds: int = 0
    #: requests finished through the synchronous API (real-time mode or the deadline fallback),
    #: and the rate the last real-time shard ran at (requests per minute)
    realtime_requests: int = 0
    realtime_rpm: float | None = None
    #: the deadline came near: the batch API's unfinished requests go to real time
    fell_back: bool = False
    #: admission keys the account workflow granted (its `admission` signals)
    admitted: list[str] = Field(default_factory=list)
    #: the poll count the schedule counts from (reset when a cancel is sent)
    schedule_origin: int = 0
    cancel_requested: bool = False
    cancel_reason: str | None = None
    cancel_sent: bool = False
    failure_reason: str | None = None
    totals: BatchTotals | None = None
    handlers: list[HandlerState] = Field(default_factory=list)


class BatchInput(_Model):
    """What a client starts `BatchWorkflow` with. Every field is optional at decode time so that
    any JSON object decodes; the workflow validates it first thing and fails naming the field."""

    batch_id: str | None = None
    provider: str | None = None
    endpoint: str | None = None
    model: str | None = None
    requests: list[dict[str, Any]] | None = None
    requests_uri: str | None = None
    poll_schedule_seconds: list[_StrictFloat] | None = None
    max_age_seconds: _StrictFloat | None = None
    handlers: list[dict[str, Any]] | None = None
    metadata: dict[str, str] | None = None
    #: how long a batch whose handlers failed stays open for `redispatch_handlers`
    handler_grace_seconds: _StrictFloat | None = None
    #: refuse the batch before anything is sent if its estimated cost (high end) is above this
    max_cost_usd: _StrictFloat | None = None
    #: Temporal task priority of every activity of the batch: 1 (first) to 5 (last), default 3
    priority: _StrictInt | None = None
    #: fairness key: batches of different tenants share the workers' task queues fairly
    tenant: str | None = None
    #: the first round plus retry rounds for requests that failed retryably (1..10, default 2)
    max_rounds: _StrictInt | None = None
    #: "batch" (the provider's batch API, the default) or "realtime" (its synchronous API)
    mode: str | None = None
    realtime: RealtimeLimits | None = None
    #: when the batch must be done (shorter than max_age_seconds): near it, what the batch API
    #: has not finished is cancelled there and finished in real time
    deadline_seconds: _StrictFloat | None = None
    #: from the third poll on, the schedule's delays times this (1..100): for batches that
    #: provider webhooks or the account sweep wake, whose polls are a safety net
    push_poll_stretch: _StrictFloat | None = None
    #: caps on one provider batch below the provider's own limits (requests, bytes of requests)
    max_requests_per_shard: _StrictInt | None = None
    max_bytes_per_shard: _StrictInt | None = None
    #: set by the workflow itself when it continues as new; clients leave it out
    state: BatchState | None = None


class BatchTotals(_Model):
    status: BatchStatus
    counts: OutcomeCounts = Field(default_factory=OutcomeCounts)
    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0
    cost_usd: float | None = None
    cost_unknown_requests: int = 0
    failure_reason: str | None = None
    created_at: datetime | None = None
    submitted_at: datetime | None = None
    ended_at: datetime | None = None


class BatchSummary(_Model):
    """The workflow's result and the body every completion handler receives."""

    batch_id: str
    workflow_id: str
    status: BatchStatus
    provider: str
    endpoint: str
    model: str | None = None
    counts: OutcomeCounts = Field(default_factory=OutcomeCounts)
    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0
    cost_usd: float | None = None
    provider_batch_ids: list[str] = Field(default_factory=list)
    created_at: datetime | None = None
    submitted_at: datetime | None = None
    ended_at: datetime | None = None
    failure_reason: str | None = None
    cancel_reason: str | None = None
    handlers: list[HandlerState] = Field(default_factory=list)
    metadata: dict[str, str] = Field(default_factory=dict)


class StatusQuery(_Model):
    """What the `status` query returns: progress while the batch runs."""

    batch_id: str
    status: BatchStatus
    provider: str
    model: str | None = None
    counts: OutcomeCounts = Field(default_factory=OutcomeCounts)
    shards: list[ShardState] = Field(default_factory=list)
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float | None = None
    next_poll_at: datetime | None = None
    poll_count: int = 0
    provider_events: int = 0
    #: retry rounds started so far, and the rounds the batch allows in all
    retry_rounds: int = 0
    max_rounds: int | None = None
    #: real time: requests finished so far that way, and the last shard's requests per minute
    realtime_requests: int = 0
    realtime_rpm: float | None = None
    cancel_requested: bool = False
    cancel_reason: str | None = None
    failure_reason: str | None = None
    handlers: list[HandlerState] = Field(default_factory=list)


class RedispatchResult(_Model):
    handlers: list[HandlerState]


BatchState.model_rebuild()


class SweepTotals(_Model):
    """What an account sweep workflow's sweeps did, over all its runs: its `status` query."""

    sweeps: int = 0
    #: sweeps whose activity ran out of retries (the provider or the store was down)
    failed_sweeps: int = 0
    listed: int = 0
    changed: int = 0
    signalled: int = 0
    #: the last sweep that ran: batches listed, ours changed, workflows signalled
    last_listed: int = 0
    last_changed: int = 0
    last_signalled: int = 0
    last_error: str | None = None


class SweepWorkflowInput(_Model):
    """The account sweep workflow's input (workflows/sweep.py)."""

    provider: str
    sweep_seconds: float
    #: list pages read per sweep, at most (100 batches each)
    max_pages: int = 50
    #: sweeps per run before it continues as new (history stays bounded)
    continue_as_new_after: int = 100
    #: carried across continue-as-new
    totals: SweepTotals = Field(default_factory=SweepTotals)

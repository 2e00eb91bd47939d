"""Pydantic models shared by the workflow, the activities and the client.

They are small by design (ids, counts, statuses): they travel in Temporal payloads and history.
Requests and results live in PostgreSQL. Every model tolerates extra keys so that fields can be
added without breaking batches already running.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "SEARCH_ATTRIBUTES",
    "WORKFLOW_TYPE",
    "BatchInput",
    "BatchState",
    "BatchStatus",
    "BatchSummary",
    "BatchTotals",
    "CancelInput",
    "ClaimInput",
    "FinalizeInput",
    "HandlerInput",
    "HandlerResult",
    "HandlerSpec",
    "HandlerState",
    "IngestInput",
    "IngestResult",
    "OutcomeCounts",
    "PollInput",
    "PollResult",
    "RedispatchResult",
    "RoundInput",
    "ShardPlan",
    "ShardState",
    "StageInput",
    "StageResult",
    "StatusQuery",
    "SubmitInput",
    "SubmitResult",
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


class OutcomeCounts(_Model):
    total: int = 0
    succeeded: int = 0
    failed: int = 0
    expired: int = 0
    cancelled: int = 0
    pending: int = 0


class ShardPlan(_Model):
    shard: int
    request_count: int
    byte_size: int


class ShardState(_Model):
    """One provider batch of one shard in one round."""

    shard: int
    round: int = 0
    request_count: int = 0
    provider_batch_id: str | None = None
    input_file_id: str | None = None
    ref_extra: dict[str, str] = Field(default_factory=dict)
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

    def apply_poll(self, fresh: ShardState) -> None:
        """Take what a poll learnt about this provider batch (`poll_shards` returns updated copies)."""
        for name in _POLLED_FIELDS:
            setattr(self, name, getattr(fresh, name))
        self.not_found_polls = 0


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
    cancel_requested: bool = False
    cancel_reason: str | None = None
    failure_reason: str | None = None
    handlers: list[HandlerState] = Field(default_factory=list)


# ---- activity inputs and outputs -------------------------------------------------------------


class ClaimInput(_Model):
    """Claim a batch id for one workflow run chain before anything is staged or sent."""

    batch_id: str
    workflow_id: str
    #: the first run id of the chain (continue-as-new keeps it)
    owner_run_id: str
    provider: str
    endpoint: str
    model: str | None = None
    metadata: dict[str, str] = Field(default_factory=dict)


class StageInput(_Model):
    batch_id: str
    workflow_id: str
    provider: str
    endpoint: str
    model: str | None = None
    requests: list[dict[str, Any]] | None = None
    requests_uri: str | None = None
    metadata: dict[str, str] = Field(default_factory=dict)


class StageResult(_Model):
    request_count: int
    byte_size: int
    model: str | None = None
    shards: list[ShardPlan] = Field(default_factory=list)


class SubmitInput(_Model):
    batch_id: str
    workflow_id: str
    provider: str
    endpoint: str
    model: str | None = None
    shard: int
    round: int = 0


class RoundInput(_Model):
    """Move a shard's requests to a new round before submitting them again."""

    batch_id: str
    shard: int
    from_round: int
    to_round: int


class SubmitResult(_Model):
    provider_batch_id: str
    input_file_id: str | None = None
    ref_extra: dict[str, str] = Field(default_factory=dict)
    reused: bool = False


class PollInput(_Model):
    batch_id: str
    provider: str
    shards: list[ShardState]


class PollResult(_Model):
    shards: list[ShardState]


class IngestInput(_Model):
    batch_id: str
    provider: str
    model: str | None = None
    shard: ShardState
    #: set when the batch is being expired: what the provider cancelled because of durabatch's
    #: max-age cancel is recorded as `expired`, with this reason, not as a user's cancel
    expiry_reason: str | None = None


class IngestResult(_Model):
    lines: int
    succeeded: int
    failed: int
    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0
    cost_usd: float | None = None


class CancelInput(_Model):
    batch_id: str
    provider: str
    shards: list[ShardState]


class FinalizeInput(_Model):
    batch_id: str
    #: the outcome given to requests that have none: "failed" (missing from the provider's files),
    #: "expired" (max age) or "cancelled"
    unresolved_outcome: Literal["failed", "expired", "cancelled"] = "failed"
    unresolved_reason: str = "missing from the provider's output"
    status: BatchStatus
    failure_reason: str | None = None
    cancel_reason: str | None = None


class HandlerInput(_Model):
    batch_id: str
    handler_index: int
    handler: HandlerSpec
    idempotency_key: str
    summary: BatchSummary


class HandlerResult(_Model):
    status: Literal["succeeded", "skipped"]
    detail: str | None = None


class RedispatchResult(_Model):
    handlers: list[HandlerState]


BatchState.model_rebuild()


# ---- names other languages and the `temporal` CLI rely on -------------------------------------

WORKFLOW_TYPE = "BatchWorkflow"


def workflow_id_for(batch_id: str) -> str:
    return f"batch-{batch_id}"


#: Search attributes durabatch upserts; the worker registers them when the namespace lacks them.
SEARCH_ATTRIBUTES: dict[str, Literal["keyword", "int"]] = {
    "DurabatchStatus": "keyword",
    "DurabatchProvider": "keyword",
    "DurabatchModel": "keyword",
    "DurabatchRequests": "int",
}

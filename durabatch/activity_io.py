"""The activities' inputs and results, written once; their names and stubs are in
durabatch.activity_api, which re-exports these shapes.

Like durabatch.models, these shapes travel in Temporal payloads and history: small (ids, counts,
statuses), and tolerant of extra keys so that fields can be added without breaking running batches.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from durabatch.models import (
    BatchStatus,
    BatchSummary,
    CarriesRef,
    HandlerSpec,
    RealtimeLimits,
    ShardState,
)

__all__ = [
    "AdmissionInput",
    "AdmissionResult",
    "CancelInput",
    "ClaimInput",
    "FinalizeInput",
    "HandlerInput",
    "HandlerResult",
    "IngestInput",
    "IngestResult",
    "PollInput",
    "PollResult",
    "RealtimeChunkInput",
    "RealtimeChunkResult",
    "RetryRoundInput",
    "RetryRoundResult",
    "RoundInput",
    "ShardPlan",
    "StageInput",
    "StageResult",
    "SubmitInput",
    "SubmitResult",
    "SweepInput",
    "SweepResult",
]


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore")


class ShardPlan(_Model):
    shard: int
    request_count: int
    byte_size: int


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
    #: the batch has a cost limit: estimate its cost even for requests a client staged
    estimate_cost: bool = False
    #: the batch's own caps on one provider batch (below the provider's limits)
    max_requests_per_shard: int | None = None
    max_bytes_per_shard: int | None = None


class StageResult(_Model):
    request_count: int
    byte_size: int
    model: str | None = None
    shards: list[ShardPlan] = Field(default_factory=list)
    #: the cost estimate (durabatch/estimate.py); None where none was made or no price is known
    estimated_input_tokens: int | None = None
    max_output_tokens: int | None = None
    cost_low_usd: float | None = None
    cost_high_usd: float | None = None


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


class SubmitResult(CarriesRef):
    """The provider batch a shard became (`ref` is always set), and whether it already existed."""

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


class RealtimeChunkInput(_Model):
    """Run the shard's requests with `line_from <= line_no < line_to` through the provider's
    synchronous endpoint, writing each result for `round` as it arrives."""

    batch_id: str
    provider: str
    endpoint: str
    model: str | None = None
    shard: int = 0
    round: int = 0
    line_from: int
    line_to: int
    #: unset values come from the worker: DURABATCH_<PROVIDER>_RPM / _TPM, concurrency 8
    limits: RealtimeLimits = Field(default_factory=RealtimeLimits)


class RealtimeChunkResult(_Model):
    """Counts only: the results themselves are in the store."""

    #: requests in the range
    requests: int
    #: of them, already with a result for the round when this attempt started (not sent again)
    skipped: int
    #: results this attempt wrote
    written: int
    succeeded: int
    failed: int
    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0


class HandlerInput(_Model):
    batch_id: str
    handler_index: int
    handler: HandlerSpec
    idempotency_key: str
    summary: BatchSummary


class HandlerResult(_Model):
    status: Literal["succeeded", "skipped"]
    detail: str | None = None


class AdmissionInput(_Model):
    """Ask the provider account for room for one shard (durabatch/admission.py)."""

    batch_id: str
    workflow_id: str
    provider: str
    model: str | None = None
    shard: int
    round: int = 0
    priority: int | None = None
    tenant: str | None = None


class AdmissionResult(_Model):
    #: True: submit now (no limit applies, or room was free); False: wait for the `admission` signal
    admitted: bool
    key: str | None = None
    account_workflow_id: str | None = None
    reason: str | None = None


class RetryRoundInput(_Model):
    """Move the requests that failed retryably into round `to_round`, planned into shards."""

    batch_id: str
    provider: str
    to_round: int
    #: also those the batch API left cancelled (the deadline fallback finishes them in real time)
    include_cancelled: bool = False
    #: instead, every request of this shard of `from_round` (the provider refused it whole for
    #: lack of queue room: its requests never ran)
    shard: int | None = None
    from_round: int | None = None
    #: the batch's own caps on one provider batch, as at staging (None: the provider's limits)
    max_requests_per_shard: int | None = None
    max_bytes_per_shard: int | None = None


class RetryRoundResult(_Model):
    #: the new round's shards (empty: nothing to retry)
    shards: list[ShardPlan] = Field(default_factory=list)


class SweepInput(_Model):
    """One status sweep of a provider account (the account sweep workflow)."""

    provider: str
    #: at most this many pages of the provider's batch list per sweep
    max_pages: int = 50


class SweepResult(_Model):
    """Counts only: a sweep of thousands of batches leaves three numbers in history."""

    #: batches the provider listed in the sweep's window (ours or not)
    listed: int = 0
    #: of those, ours whose status changed since the last sweep
    changed: int = 0
    #: batch workflows that got `provider_event` (a closed workflow is not counted)
    signalled: int = 0

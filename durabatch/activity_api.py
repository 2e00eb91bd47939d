"""The activities' interface: every activity's name, input and result, written once.

The workflow calls activities through the stubs at the bottom of this module, so the type checker
ties each call's input to its result and a reader can follow a call across Temporal; the worker
registers the implementations in `activities/`, which take their names from these stubs
(`tests/test_activity_api.py` checks that each implementation has its stub's types). The stubs are
never registered and never run.

The inputs and results themselves are in durabatch.activity_io; this module re-exports them, so
that a caller reaches an activity and its shapes through one name (`api.SubmitInput`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, NoReturn

from temporalio import activity

from durabatch.activity_io import (
    AdmissionInput,
    AdmissionResult,
    CancelInput,
    ClaimInput,
    FinalizeInput,
    HandlerInput,
    HandlerResult,
    IngestInput,
    IngestResult,
    PollInput,
    PollResult,
    RealtimeChunkInput,
    RealtimeChunkResult,
    RetryRoundInput,
    RetryRoundResult,
    RoundInput,
    ShardPlan,
    StageInput,
    StageResult,
    SubmitInput,
    SubmitResult,
    SweepInput,
    SweepResult,
)
from durabatch.models import BatchTotals

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
    "activity_name",
    "cancel_provider_batches",
    "claim_batch",
    "claim_handler",
    "deliver_webhook",
    "finalize_batch",
    "ingest_results",
    "poll_shards",
    "record_handler",
    "request_admission",
    "run_realtime_chunk",
    "stage_requests",
    "start_retry_round",
    "start_round",
    "submit_shard",
    "sweep_account",
]


# ---- the stubs: names and types; the implementations live in activities/ ----------------------


def _stub(name: str) -> NoReturn:
    raise NotImplementedError(f"{name} is an interface stub; the worker runs activities/' implementation")


@activity.defn
async def claim_batch(inp: ClaimInput) -> None:
    """Own a batch id for one run chain; refused (BatchIdInUse) if another chain holds it."""
    _stub("claim_batch")


@activity.defn
async def stage_requests(inp: StageInput) -> StageResult:
    """Validate and store a batch's requests, planned into shards."""
    _stub("stage_requests")


@activity.defn
async def request_admission(inp: AdmissionInput) -> AdmissionResult:
    """Ask the account workflow for queue room for a shard (signal-with-start)."""
    _stub("request_admission")


@activity.defn
async def submit_shard(inp: SubmitInput) -> SubmitResult:
    """Upload a shard and create its provider batch, at most once per shard and round."""
    _stub("submit_shard")


@activity.defn
async def poll_shards(inp: PollInput) -> PollResult:
    """Ask the provider where each sent shard stands."""
    _stub("poll_shards")


@activity.defn
async def start_round(inp: RoundInput) -> int:
    """Move a shard's requests to a new round before they are submitted again."""
    _stub("start_round")


@activity.defn
async def start_retry_round(inp: RetryRoundInput) -> RetryRoundResult:
    """Move what failed retryably (429, 5xx, expired by the provider, missing) to a new round."""
    _stub("start_retry_round")


@activity.defn
async def cancel_provider_batches(inp: CancelInput) -> None:
    """Best-effort cancel of a batch's provider batches."""
    _stub("cancel_provider_batches")


@activity.defn
async def ingest_results(inp: IngestInput) -> IngestResult:
    """Stream an ended provider batch's result files into the store."""
    _stub("ingest_results")


@activity.defn
async def run_realtime_chunk(inp: RealtimeChunkInput) -> RealtimeChunkResult:
    """Run a range of a shard's requests in real time, each result written once."""
    _stub("run_realtime_chunk")


@activity.defn
async def finalize_batch(inp: FinalizeInput) -> BatchTotals:
    """Give every request exactly one outcome and compute the batch's totals."""
    _stub("finalize_batch")


@activity.defn
async def deliver_webhook(inp: HandlerInput) -> HandlerResult:
    """POST the signed summary to a webhook handler."""
    _stub("deliver_webhook")


@activity.defn
async def claim_handler(inp: HandlerInput) -> HandlerResult:
    """Whether a handler already succeeded (then it is skipped)."""
    _stub("claim_handler")


@activity.defn
async def record_handler(inp: HandlerInput) -> None:
    """Record that a handler succeeded, so it never runs again."""
    _stub("record_handler")


@activity.defn
async def sweep_account(inp: SweepInput) -> SweepResult:
    """List a provider account's batches and wake the batches of ours whose status changed."""
    _stub("sweep_account")


def activity_name(stub: Callable[..., Awaitable[Any]]) -> str:
    """The activity's name (its stub's function name): the implementations register under it."""
    return stub.__name__

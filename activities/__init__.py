"""Activities: thin and idempotent; they call durabatch.providers and durabatch.store."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from activities.admission import AdmissionActivities
from activities.deps import ActivityDeps
from activities.finalize import FinalizeActivities
from activities.handlers import HandlerActivities
from activities.identity import IdentityActivities
from activities.ingest import IngestActivities
from activities.realtime import RealtimeActivities
from activities.rounds import RoundActivities
from activities.smoke import SmokeActivities
from activities.staging import StagingActivities
from activities.submission import SubmissionActivities
from activities.sweep import SweepActivities

__all__ = ["ActivityDeps", "all_activities"]


def all_activities(deps: ActivityDeps) -> list[Callable[..., Any]]:
    """Every activity durabatch registers, bound to its dependencies."""
    staging = StagingActivities(deps)
    submission = SubmissionActivities(deps)
    ingest = IngestActivities(deps)
    finalize = FinalizeActivities(deps)
    handler = HandlerActivities(deps)
    smoke = SmokeActivities(deps.pool)
    identity = IdentityActivities(deps)
    realtime = RealtimeActivities(deps)
    sweep = SweepActivities(deps)
    admission = AdmissionActivities(deps)
    rounds = RoundActivities(deps)
    return [
        identity.claim_batch,
        staging.stage_requests,
        admission.request_admission,
        submission.submit_shard,
        submission.poll_shards,
        submission.start_round,
        rounds.start_retry_round,
        submission.cancel_provider_batches,
        ingest.ingest_results,
        realtime.run_realtime_chunk,
        finalize.finalize_batch,
        handler.deliver_webhook,
        handler.claim_handler,
        handler.record_handler,
        sweep.sweep_account,
        smoke.write_and_read,
    ]

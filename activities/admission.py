"""request_admission: a shard asks its provider account for queue room before it is submitted.

When no limit of the worker's settings applies to the batch's provider and model, the answer is
"admitted" at once and no account workflow is involved. Otherwise the shard's demand (estimated
input tokens, requests) goes to the account workflow with signal-with-start, so the workflow
exists whenever a shard waits, and the answer says where the shard stands in line.
"""

from __future__ import annotations

from temporalio import activity
from temporalio.client import WorkflowHandle
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.service import RPCError

from activities.deps import ActivityDeps
from durabatch import activity_api as api
from durabatch.activity_api import AdmissionInput, AdmissionResult
from durabatch.admission import (
    ACCOUNT_WORKFLOW_TYPE,
    REQUEST_SIGNAL,
    AccountLimits,
    AdmissionRequest,
    Demand,
    account_workflow_id,
)
from durabatch.estimate import BYTES_PER_TOKEN
from durabatch.store import requests

__all__ = ["AdmissionActivities"]


class AdmissionActivities:
    def __init__(self, deps: ActivityDeps) -> None:
        self._deps = deps

    @activity.defn(name=api.activity_name(api.request_admission))
    async def request_admission(self, inp: AdmissionInput) -> AdmissionResult:
        limits = AccountLimits.model_validate(self._deps.settings.account_limits(inp.provider))
        if not limits.applies_to(inp.model):
            return AdmissionResult(admitted=True)
        count, byte_size = await requests.shard_size(self._deps.pool, inp.batch_id, inp.shard, inp.round)
        key = f"{inp.workflow_id}:s{inp.shard}:r{inp.round}"
        request = AdmissionRequest(
            key=key,
            workflow_id=inp.workflow_id,
            shard=inp.shard,
            round=inp.round,
            demand=Demand(model=inp.model, tokens=-(-byte_size // BYTES_PER_TOKEN), requests=count),
            priority=inp.priority,
            tenant=inp.tenant,
        )
        info = activity.info()
        account_id = account_workflow_id(inp.provider, info.task_queue)
        handle: WorkflowHandle[object, object] = await activity.client().start_workflow(
            ACCOUNT_WORKFLOW_TYPE,
            {"provider": inp.provider},
            id=account_id,
            task_queue=info.task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            start_signal=REQUEST_SIGNAL,
            start_signal_args=[{"request": request.model_dump(), "limits": limits.model_dump()}],
        )
        reason: str | None = None
        try:
            reason = await handle.query("waiting_reason", key, result_type=str)
        except RPCError:
            reason = "waiting for admission"  # the account workflow is busy; the grant will come
        return AdmissionResult(
            admitted=False, key=key, account_workflow_id=account_id, reason=reason or "waiting for admission"
        )

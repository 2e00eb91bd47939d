"""claim_batch: the workflow owns its batch id, before anything is staged or sent.

Temporal's default id-reuse policy lets a client start `batch-X` again once the first run has
closed; without this claim the second run would find the first one's rows and reuse its provider
batch and results. The owner is the chain's first run id, so continue-as-new keeps ownership and a
retried claim by the same run passes.
"""

from __future__ import annotations

from temporalio import activity

from activities.deps import ActivityDeps
from activities.errors import batch_id_in_use
from durabatch import activity_api as api
from durabatch.activity_api import ClaimInput
from durabatch.store import batches

__all__ = ["IdentityActivities"]


class IdentityActivities:
    def __init__(self, deps: ActivityDeps) -> None:
        self._deps = deps

    @activity.defn(name=api.activity_name(api.claim_batch))
    async def claim_batch(self, inp: ClaimInput) -> None:
        row = await batches.claim_batch(
            self._deps.pool,
            batch_id=inp.batch_id,
            workflow_id=inp.workflow_id,
            owner_run_id=inp.owner_run_id,
            provider=inp.provider,
            endpoint=inp.endpoint,
            model=inp.model,
            metadata=inp.metadata,
        )
        owner = row["owner_run_id"]
        if owner == inp.owner_run_id:
            return
        run = f"run {owner}" if owner else "a run recorded before run ownership was kept"
        raise batch_id_in_use(
            f"batch_id {inp.batch_id!r} is already used by workflow {row['workflow_id']} {run} "
            f"(status {row['status']}); batch ids are never reused: start the new batch with another "
            "batch_id (its rows, provider batches and results are left untouched)"
        )

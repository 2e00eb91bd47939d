"""A pipeline stage that suspends on a batch: the Temporal way to use durabatch from your own workflow.

`EvalPipeline` runs a batch as a child workflow (durabatch's `BatchWorkflow`, by name, so your
worker does not import durabatch's workflow code), waits durably however long the provider takes,
and then acts on the summary. Register `EvalPipeline` on your own worker; durabatch's worker runs
the child on the `durabatch` task queue.

    await client.execute_workflow(EvalPipeline.run, PipelineInput(...), id="eval-42", task_queue="my-app")
"""

from __future__ import annotations

from datetime import timedelta

from pydantic import BaseModel
from temporalio import workflow
from temporalio.exceptions import ChildWorkflowError
from temporalio.workflow import ParentClosePolicy

with workflow.unsafe.imports_passed_through():
    from durabatch.contract import summary_from_failure
    from durabatch.models import BatchInput, BatchSummary, workflow_id_for


class PipelineInput(BaseModel):
    batch_id: str
    requests_uri: str
    model: str = "gpt-4o-mini"
    durabatch_task_queue: str = "durabatch"
    #: below this share of succeeded requests the stage fails
    min_success_ratio: float = 0.9
    #: None keeps durabatch's default schedule (30 s, 1, 2, 5, 10 min, then every 15 min)
    poll_schedule_seconds: list[float] | None = None


class PipelineResult(BaseModel):
    batch_status: str
    succeeded: int
    total: int
    cost_usd: float | None
    passed: bool


@workflow.defn(name="EvalPipeline")
class EvalPipeline:
    @workflow.run
    async def run(self, inp: PipelineInput) -> PipelineResult:
        try:
            summary = await self._batch(inp)
        except ChildWorkflowError as err:
            # A failed batch closes its workflow as Failed (BatchFailed) with the summary in the
            # failure's details; anything else (terminated, timed out, invalid input) re-raises.
            failed = summary_from_failure(err)
            if failed is None:
                raise
            summary = failed
        total = summary.counts.total
        ratio = summary.counts.succeeded / total if total else 0.0
        return PipelineResult(
            batch_status=summary.status,
            succeeded=summary.counts.succeeded,
            total=total,
            cost_usd=summary.cost_usd,
            passed=summary.status == "completed" and ratio >= inp.min_success_ratio,
        )

    async def _batch(self, inp: PipelineInput) -> BatchSummary:
        summary: BatchSummary = await workflow.execute_child_workflow(
            "BatchWorkflow",
            BatchInput(
                batch_id=inp.batch_id,
                provider="openai",
                endpoint="/v1/chat/completions",
                model=inp.model,
                requests_uri=inp.requests_uri,
                poll_schedule_seconds=inp.poll_schedule_seconds,
            ),
            id=workflow_id_for(inp.batch_id),
            task_queue=inp.durabatch_task_queue,
            result_type=BatchSummary,
            # cancelling the pipeline cancels the batch (at the provider too), keeping partial results
            parent_close_policy=ParentClosePolicy.REQUEST_CANCEL,
            execution_timeout=timedelta(days=3),
        )
        return summary

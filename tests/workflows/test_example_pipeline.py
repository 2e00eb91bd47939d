"""examples/pipeline.py: a parent workflow runs a batch as a child and uses its summary."""

from __future__ import annotations

import uuid
from pathlib import Path

from temporalio.worker import Worker

from examples.pipeline import EvalPipeline, PipelineInput
from tests.stack import Stack, chat_requests, write_jsonl


async def test_parent_workflow_suspends_on_a_batch(stack: Stack, tmp_path: Path) -> None:
    app_queue = f"app-{uuid.uuid4().hex[:8]}"
    requests = chat_requests(30)
    requests[0]["custom_id"] = "x__fail_500"
    uri = write_jsonl(tmp_path / "eval.jsonl", requests)
    batch_id = uuid.uuid4().hex[:10]
    async with Worker(stack.client, task_queue=app_queue, workflows=[EvalPipeline]):
        result = await stack.client.execute_workflow(
            EvalPipeline.run,
            PipelineInput(
                batch_id=batch_id,
                requests_uri=uri,
                durabatch_task_queue=stack.settings.task_queue,
                poll_schedule_seconds=[1.0],
            ),
            id=f"eval-{batch_id}",
            task_queue=app_queue,
        )
    assert result.batch_status == "completed"
    assert (result.succeeded, result.total) == (29, 30)
    assert result.passed  # 29/30 is above the 0.9 bar
    assert result.cost_usd is not None and result.cost_usd > 0


async def test_parent_workflow_reads_the_summary_of_a_failed_batch(stack: Stack, tmp_path: Path) -> None:
    app_queue = f"app-{uuid.uuid4().hex[:8]}"
    requests = chat_requests(4)
    requests[3]["custom_id"] = requests[1]["custom_id"]  # staging refuses the file: the batch fails
    uri = write_jsonl(tmp_path / "eval.jsonl", requests)
    batch_id = uuid.uuid4().hex[:10]
    async with Worker(stack.client, task_queue=app_queue, workflows=[EvalPipeline]):
        result = await stack.client.execute_workflow(
            EvalPipeline.run,
            PipelineInput(
                batch_id=batch_id,
                requests_uri=uri,
                durabatch_task_queue=stack.settings.task_queue,
                poll_schedule_seconds=[1.0],
            ),
            id=f"eval-{batch_id}",
            task_queue=app_queue,
        )
    # the child closed as Failed (BatchFailed); the parent still got its summary from the details
    assert result.batch_status == "failed"
    assert not result.passed and result.succeeded == 0

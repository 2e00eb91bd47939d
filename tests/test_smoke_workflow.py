"""A trivial workflow and activity on the real dev server, writing to and reading from the store."""

from __future__ import annotations

import uuid

from temporalio.client import Client
from temporalio.worker import Worker

from activities.smoke import SmokeActivities
from durabatch.store.pool import Pool
from workflows.smoke import SmokeWorkflow


async def test_smoke_workflow_round_trips_through_store(
    temporal_client: Client, pool: Pool, task_queue: str
) -> None:
    note = f"hello-{uuid.uuid4().hex[:6]}"
    acts = SmokeActivities(pool)
    async with Worker(
        temporal_client, task_queue=task_queue, workflows=[SmokeWorkflow], activities=[acts.write_and_read]
    ):
        result = await temporal_client.execute_workflow(
            SmokeWorkflow.run, note, id=f"smoke-{uuid.uuid4()}", task_queue=task_queue
        )
    assert result == note
    assert await pool.fetchval("SELECT count(*) FROM smoke_checks WHERE note = $1", note) == 1

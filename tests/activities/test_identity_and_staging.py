"""claim_batch and stage_requests, each run twice as a retry would run them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.identity import IdentityActivities
from activities.staging import StagingActivities
from durabatch import contract
from tests.activities.conftest import Rig, chat_lines, claim_input, new_id, stage_input


async def test_claim_batch_twice_by_its_run_passes_and_another_run_is_refused(
    rig: Rig, env: ActivityEnvironment
) -> None:
    batch_id = new_id()
    claim = IdentityActivities(rig.deps).claim_batch
    await env.run(claim, claim_input(batch_id, "run-1"))
    await env.run(claim, claim_input(batch_id, "run-1"))  # a retry by the owner passes
    with pytest.raises(ApplicationError) as info:
        await env.run(claim, claim_input(batch_id, "run-2"))
    assert info.value.type == contract.BATCH_ID_IN_USE and info.value.non_retryable
    assert batch_id in info.value.message and "run run-1" in info.value.message
    owner = await rig.pool.fetchval("SELECT owner_run_id FROM batches WHERE batch_id = $1", batch_id)
    assert owner == "run-1", "the refused run left the owner's row alone"


async def test_staging_twice_gives_the_same_answer_and_stages_each_request_once(
    rig: Rig, env: ActivityEnvironment
) -> None:
    batch_id = new_id()
    stage = StagingActivities(rig.deps).stage_requests
    first = await env.run(stage, stage_input(batch_id, 7))
    again = await env.run(stage, stage_input(batch_id, 7))
    assert again == first
    assert (first.request_count, first.model, [s.request_count for s in first.shards]) == (
        7,
        "gpt-4o-mini",
        [7],
    )
    rows = await rig.pool.fetch(
        "SELECT custom_id, line_no FROM requests WHERE batch_id = $1 ORDER BY line_no", batch_id
    )
    assert [(r["custom_id"], r["line_no"]) for r in rows] == [(f"r{i}", i + 1) for i in range(7)]
    batch = await rig.pool.fetchrow("SELECT status, request_count FROM batches WHERE batch_id = $1", batch_id)
    assert batch is not None and (batch["status"], batch["request_count"]) == ("pending", 7)


async def test_staging_a_file_twice_matches_staging_it_inline(
    rig: Rig, env: ActivityEnvironment, tmp_path: Path
) -> None:
    path = tmp_path / "in.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in chat_lines(5)))
    stage = StagingActivities(rig.deps).stage_requests
    from_file, inline = new_id(), new_id()
    first = await env.run(stage, stage_input(from_file, requests_uri=str(path)))
    assert await env.run(stage, stage_input(from_file, requests_uri=str(path))) == first
    assert await env.run(stage, stage_input(inline, 5)) == first
    count = await rig.pool.fetchval("SELECT count(*) FROM requests WHERE batch_id = $1", from_file)
    assert count == 5


async def test_a_bad_line_stages_nothing_and_is_not_retried(rig: Rig, env: ActivityEnvironment) -> None:
    batch_id = new_id()
    lines = chat_lines(3)
    lines[2] = {"custom_id": "r2", "body": "not an object"}
    with pytest.raises(ApplicationError) as info:
        await env.run(StagingActivities(rig.deps).stage_requests, stage_input(batch_id, requests=lines))
    assert info.value.type == contract.INVALID_INPUT and info.value.non_retryable
    assert "3" in info.value.message, info.value.message  # the line is named
    assert await rig.pool.fetchval("SELECT count(*) FROM requests WHERE batch_id = $1", batch_id) == 0
    status = await rig.pool.fetchval("SELECT status FROM batches WHERE batch_id = $1", batch_id)
    assert status == "pending", "the row exists for the batch to end `failed` on"

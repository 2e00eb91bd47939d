"""submit_shard, poll_shards, ingest_results, finalize_batch and the handler activities, each run
twice as a retry would run them, against the emulator over HTTP and the real PostgreSQL."""

from __future__ import annotations

import dataclasses

from temporalio.testing import ActivityEnvironment

from activities.finalize import FinalizeActivities
from activities.handlers import HandlerActivities
from activities.ingest import IngestActivities
from activities.staging import StagingActivities
from activities.submission import SubmissionActivities
from durabatch.activity_api import FinalizeInput, HandlerInput, IngestInput, PollInput, SubmitInput
from durabatch.models import BatchSummary, HandlerSpec, ShardState
from durabatch.webhook_receiver import WebhookReceiver
from tests.activities.conftest import Rig, new_id, stage_input
from tests.helpers import eventually


def submit_input(batch_id: str) -> SubmitInput:
    return SubmitInput(
        batch_id=batch_id,
        workflow_id=f"batch-{batch_id}",
        provider="openai",
        endpoint="/v1/chat/completions",
        model="gpt-4o-mini",
        shard=0,
    )


async def created(rig: Rig) -> int:
    stats = await rig.admin("GET", "/stats")
    return int(stats["batches_created"].get("openai", 0))


async def staged_and_submitted(rig: Rig, env: ActivityEnvironment, n: int) -> tuple[str, ShardState]:
    batch_id = new_id()
    await env.run(StagingActivities(rig.deps).stage_requests, stage_input(batch_id, n))
    sent = await env.run(SubmissionActivities(rig.deps).submit_shard, submit_input(batch_id))
    return batch_id, ShardState(shard=0, request_count=n, ref=sent.ref)


async def test_submit_twice_creates_one_provider_batch(rig: Rig, env: ActivityEnvironment) -> None:
    batch_id = new_id()
    await env.run(StagingActivities(rig.deps).stage_requests, stage_input(batch_id, 4))
    submit = SubmissionActivities(rig.deps).submit_shard
    before = await created(rig)
    first = await env.run(submit, submit_input(batch_id))
    again = await env.run(submit, submit_input(batch_id))
    assert not first.reused and again.reused
    assert again.provider_batch_id == first.provider_batch_id
    assert await created(rig) == before + 1
    status = await rig.pool.fetchval("SELECT status FROM batches WHERE batch_id = $1", batch_id)
    assert status == "submitted"


async def test_a_retry_after_a_lost_create_response_finds_the_batch_it_created(
    rig: Rig, env: ActivityEnvironment
) -> None:
    batch_id = new_id()
    await env.run(StagingActivities(rig.deps).stage_requests, stage_input(batch_id, 3))
    submit = SubmissionActivities(rig.deps).submit_shard
    first = await env.run(submit, submit_input(batch_id))
    # the first attempt's answer never reached the store: only its attempt row is there
    await rig.pool.execute(
        "UPDATE provider_batches SET provider_batch_id = NULL WHERE batch_id = $1", batch_id
    )
    before = await created(rig)
    retry = ActivityEnvironment()
    retry.info = dataclasses.replace(retry.info, attempt=2)
    found = await retry.run(submit, submit_input(batch_id))
    assert found.reused and found.provider_batch_id == first.provider_batch_id
    assert await created(rig) == before, "no second provider batch"


async def test_ingest_of_a_shard_twice_writes_each_result_once(rig: Rig, env: ActivityEnvironment) -> None:
    n = 12
    batch_id, shard = await staged_and_submitted(rig, env, n)
    poll = SubmissionActivities(rig.deps).poll_shards
    polled = await eventually(
        lambda: env.run(poll, PollInput(batch_id=batch_id, provider="openai", shards=[shard])),
        lambda p: p.shards[0].state == "completed",
        what="the provider batch completed",
    )
    assert polled.shards[0].succeeded == n
    ingest = IngestActivities(rig.deps).ingest_results
    inp = IngestInput(batch_id=batch_id, provider="openai", model="gpt-4o-mini", shard=polled.shards[0])
    first = await env.run(ingest, inp)
    rows = await rig.pool.fetch(
        "SELECT custom_id, outcome, line, recorded_at FROM results WHERE batch_id = $1 ORDER BY custom_id",
        batch_id,
    )
    again = await env.run(ingest, inp)
    assert (first.lines, first.succeeded, first.failed) == (n, n, 0)
    assert (again.succeeded, again.failed, again.input_tokens) == (n, 0, first.input_tokens)
    assert len(rows) == n and {r["outcome"] for r in rows} == {"succeeded"}
    rows_after = await rig.pool.fetch(
        "SELECT custom_id, outcome, line, recorded_at FROM results WHERE batch_id = $1 ORDER BY custom_id",
        batch_id,
    )
    assert rows_after == rows, "the second ingest wrote nothing"

    finalize = FinalizeActivities(rig.deps).finalize_batch
    totals = await env.run(finalize, FinalizeInput(batch_id=batch_id, status="completed"))
    assert await env.run(finalize, FinalizeInput(batch_id=batch_id, status="completed")) == totals
    assert (totals.counts.total, totals.counts.succeeded) == (n, n)
    assert totals.cost_usd is not None and totals.cost_usd > 0


def handler_input(batch_id: str, spec: HandlerSpec, index: int = 0) -> HandlerInput:
    summary = BatchSummary(
        batch_id=batch_id,
        workflow_id=f"batch-{batch_id}",
        status="completed",
        provider="openai",
        endpoint="/v1/chat/completions",
    )
    return HandlerInput(
        batch_id=batch_id,
        handler_index=index,
        handler=spec,
        idempotency_key=f"{batch_id}:{index}",
        summary=summary,
    )


async def test_an_activity_handler_is_claimed_until_recorded_then_skipped(
    rig: Rig, env: ActivityEnvironment
) -> None:
    batch_id = new_id()
    await env.run(StagingActivities(rig.deps).stage_requests, stage_input(batch_id, 1))
    acts = HandlerActivities(rig.deps)
    inp = handler_input(batch_id, HandlerSpec(type="activity", name="my_handler"))
    assert (await env.run(acts.claim_handler, inp)).status == "succeeded"
    assert (await env.run(acts.claim_handler, inp)).status == "succeeded", "not recorded yet: run it again"
    await env.run(acts.record_handler, inp)
    await env.run(acts.record_handler, inp)
    skipped = await env.run(acts.claim_handler, inp)
    assert skipped.status == "skipped"
    row = await rig.pool.fetchrow(
        "SELECT status, attempts FROM handler_deliveries WHERE batch_id = $1 AND handler_index = 0", batch_id
    )
    assert row is not None and (row["status"], row["attempts"]) == ("succeeded", 2)
    dispatched = await rig.pool.fetchval(
        "SELECT handler_dispatched_at FROM batches WHERE batch_id = $1", batch_id
    )
    assert dispatched is not None


async def test_a_webhook_delivered_once_is_never_posted_again(rig: Rig, env: ActivityEnvironment) -> None:
    batch_id = new_id()
    await env.run(StagingActivities(rig.deps).stage_requests, stage_input(batch_id, 1))
    deliver = HandlerActivities(rig.deps).deliver_webhook
    async with WebhookReceiver() as receiver:
        inp = handler_input(batch_id, HandlerSpec(type="webhook", url=receiver.url))
        first = await env.run(deliver, inp)
        again = await env.run(deliver, inp)
    assert (first.status, again.status) == ("succeeded", "skipped")
    assert receiver.attempts == 1
    [delivery] = receiver.accepted
    assert delivery.idempotency_key == f"{batch_id}:0" and delivery.body["batch_id"] == batch_id

"""durabatch.store.batches on the real PostgreSQL: the row's lifecycle, the run that owns a batch
id, reconciliation and totals."""

from __future__ import annotations

from decimal import Decimal

from durabatch.store import batches, provider_batches, requests, results
from durabatch.store.pool import Pool
from tests.store.helpers import new_id, result_row, staged_batch


async def _claim(pool: Pool, batch_id: str, run: str, workflow_id: str | None = None) -> str | None:
    row = await batches.claim_batch(
        pool,
        batch_id=batch_id,
        workflow_id=workflow_id or f"batch-{batch_id}",
        owner_run_id=run,
        provider="openai",
        endpoint="/v1/chat/completions",
        model=None,
        metadata={},
    )
    owner: str | None = row["owner_run_id"]
    return owner


async def _row(pool: Pool, batch_id: str) -> batches.BatchRow:
    row = await batches.get_batch(pool, batch_id)
    assert row is not None, batch_id
    return row


async def test_create_batch_twice_keeps_the_first_row(pool: Pool) -> None:
    batch_id = new_id()
    await staged_batch(pool, batch_id, 0)
    await batches.create_batch(
        pool,
        batch_id=batch_id,
        workflow_id="batch-other",
        provider="anthropic",
        endpoint="/v1/messages",
        model=None,
        metadata={"team": "y"},
    )
    row = await batches.get_batch(pool, batch_id)
    assert row is not None
    assert (row["provider"], row["workflow_id"], row["metadata"]) == (
        "openai",
        f"batch-{batch_id}",
        {"team": "x"},
    )
    assert row["status"] == "pending" and row["owner_run_id"] is None
    assert await batches.get_batch(pool, new_id()) is None


async def test_a_claim_is_the_owners_alone(pool: Pool) -> None:
    batch_id = new_id()
    assert await _claim(pool, batch_id, "run-1") == "run-1"
    assert await _claim(pool, batch_id, "run-1") == "run-1", "a retried claim by the owner passes"
    assert await _claim(pool, batch_id, "run-2") == "run-1", "another run is shown the owner"
    row = await batches.get_batch(pool, batch_id)
    assert row is not None and row["owner_run_id"] == "run-1"


async def test_a_staged_unowned_row_is_taken_by_the_first_run_only_while_nothing_was_sent(pool: Pool) -> None:
    staged = new_id()
    await staged_batch(pool, staged, 3)
    assert await _claim(pool, staged, "run-a", workflow_id="batch-elsewhere") is None, "another workflow id"
    assert await _claim(pool, staged, "run-a") == "run-a"

    sent = new_id()
    await staged_batch(pool, sent, 3)
    await provider_batches.record_attempt(
        pool, batch_id=sent, shard=0, round_=0, provider="openai", tag="t", request_count=3
    )
    assert await _claim(pool, sent, "run-b") is None, "a row something was sent for is never taken over"

    ended = new_id()
    await staged_batch(pool, ended, 3)
    await batches.set_status(pool, ended, "failed", failure_reason="x")
    assert await _claim(pool, ended, "run-c") is None, "a row that left pending is never taken over"


async def test_set_status_keeps_the_first_submit_time_and_earlier_values(pool: Pool) -> None:
    batch_id = new_id()
    await staged_batch(pool, batch_id, 0)
    await batches.set_status(pool, batch_id, "pending", failure_reason="kept", model="m1", request_count=7)
    await batches.set_status(pool, batch_id, "submitted")
    first = await batches.get_batch(pool, batch_id)
    assert first is not None and first["submitted_at"] is not None
    await batches.set_status(pool, batch_id, "in_progress")
    row = await batches.get_batch(pool, batch_id)
    assert row is not None
    assert row["submitted_at"] == first["submitted_at"]
    assert (row["status"], row["failure_reason"], row["model"], row["request_count"]) == (
        "in_progress",
        "kept",
        "m1",
        7,
    )


async def test_set_progress_never_touches_an_ended_batch(pool: Pool) -> None:
    running, ended = new_id(), new_id()
    for batch_id in (running, ended):
        await staged_batch(pool, batch_id, 0)
    await batches.set_progress(pool, running, "finalizing")
    async with pool.acquire() as conn:
        await batches.finish(conn, ended, "cancelled", None, "stop")
    await batches.set_progress(pool, ended, "in_progress")
    assert (await _row(pool, running))["status"] == "finalizing"
    assert (await _row(pool, ended))["status"] == "cancelled"


async def test_reconcile_gives_each_request_without_a_result_one_once(pool: Pool) -> None:
    batch_id = new_id()
    await staged_batch(pool, batch_id, 6, shards=2)  # r0 r2 r4 in shard 0, r1 r3 r5 in shard 1
    async with pool.acquire() as conn:
        await results.write_results(conn, batch_id, [result_row(batch_id, "r0")])
        n = await batches.reconcile(conn, batch_id, outcome="failed", code="missing", reason="gone", shard=0)
        assert n == 2, "r2 and r4: shard 1 is left alone"
        assert await batches.reconcile(conn, batch_id, outcome="failed", code="x", reason="y", shard=0) == 0
        # only the named requests, when the caller knows which still lack a result; none named, none written
        assert (
            await batches.reconcile(conn, batch_id, outcome="failed", code="x", reason="y", custom_ids=[])
            == 0
        )
        one = await batches.reconcile(
            conn, batch_id, outcome="cancelled", code="c", reason="stop", custom_ids=["r1", "r2"]
        )
        assert one == 1, "r1 only: r2 has its result"
        assert await batches.reconcile(conn, batch_id, outcome="expired", code="max_age", reason="old") == 2
        rows = await conn.fetch(
            "SELECT custom_id, outcome, error FROM results WHERE batch_id = $1 ORDER BY custom_id", batch_id
        )
        statuses = {
            r["custom_id"]: r["status"]
            for r in await conn.fetch("SELECT custom_id, status FROM requests WHERE batch_id = $1", batch_id)
        }
    by_id = {r["custom_id"]: r for r in rows}
    assert {k: v["outcome"] for k, v in by_id.items()} == {
        "r0": "succeeded",
        "r1": "cancelled",
        "r2": "failed",
        "r3": "expired",
        "r4": "failed",
        "r5": "expired",
    }
    assert by_id["r2"]["error"] == {"code": "missing", "message": "gone"}
    # the outcome lives in `results`; `requests.status` says where the submission stands and is not rewritten
    assert set(statuses.values()) == {"pending"}, statuses


async def test_totals_count_final_rounds_and_bill_every_attempt(pool: Pool) -> None:
    batch_id = new_id()
    await staged_batch(pool, batch_id, 5)
    rows = [
        result_row(batch_id, "r0", tokens=(10, 5, 2), cost=Decimal("0.25")),
        result_row(batch_id, "r1", tokens=(20, 5, 0), cost=Decimal("0.5")),
        result_row(batch_id, "r2", outcome="failed", tokens=(0, 0, 0), cost=None),
        result_row(batch_id, "r3", outcome="cancelled", tokens=(0, 0, 0), cost=None),
        # r4's first attempt failed after the provider billed it; a retry round ran it again
        result_row(batch_id, "r4", outcome="failed", tokens=(3, 0, 0), cost=Decimal("0.01")),
    ]
    async with pool.acquire() as conn:
        await results.write_results(conn, batch_id, rows)
        await requests.set_shards(conn, batch_id, [(4, 1)])
        await requests.move_to_round(conn, batch_id, 1, 0, 1)
        await results.write_results(
            conn, batch_id, [result_row(batch_id, "r4", round_=1, tokens=(4, 1, 0), cost=Decimal("0.02"))]
        )
        got = await batches.totals(conn, batch_id)
    # counts: each request's final round (r4 succeeded); tokens and cost: every attempt
    assert (got["total"], got["succeeded"], got["failed"], got["expired"], got["cancelled"]) == (
        5,
        3,
        1,
        0,
        1,
    )
    assert got["retried"] == 1
    assert (got["input_tokens"], got["output_tokens"], got["cached_tokens"]) == (37, 11, 2)
    assert got["cost_usd"] == Decimal("0.78") and got["cost_unknown"] == 0
    row = await _row(pool, batch_id)
    counts = (row["succeeded_count"], row["failed_count"], row["cancelled_count"], row["request_count"])
    assert counts == (3, 1, 1, 5), "stored on the batch"
    assert batches.as_float(row["cost_usd"]) == 0.78 and batches.as_float(None) is None


async def test_totals_name_succeeded_results_whose_cost_is_unknown(pool: Pool) -> None:
    batch_id = new_id()
    await staged_batch(pool, batch_id, 2)
    async with pool.acquire() as conn:
        await results.write_results(
            conn, batch_id, [result_row(batch_id, "r0"), result_row(batch_id, "r1", cost=None)]
        )
        got = await batches.totals(conn, batch_id)
    assert got["cost_unknown"] == 1
    row = await batches.get_batch(pool, batch_id)
    assert row is not None and row["cost_unknown_count"] == 1


async def test_finish_keeps_the_first_end_and_names_an_unknown_batch(pool: Pool) -> None:
    batch_id = new_id()
    await staged_batch(pool, batch_id, 0)
    async with pool.acquire() as conn:
        first = await batches.finish(conn, batch_id, "cancelled", None, "wrong prompt")
        again = await batches.finish(conn, batch_id, "cancelled", None, None)
        assert await batches.finish(conn, new_id(), "failed", "x") is None
    assert first is not None and again is not None
    assert (
        again["ended_at"] == first["ended_at"] and again["results_fetched_at"] == first["results_fetched_at"]
    )
    assert again["cancel_reason"] == "wrong prompt"


async def test_handlers_dispatched_time_is_the_first(pool: Pool) -> None:
    batch_id = new_id()
    await staged_batch(pool, batch_id, 0)
    await batches.mark_handlers_dispatched(pool, batch_id)
    first = (await _row(pool, batch_id))["handler_dispatched_at"]
    await batches.mark_handlers_dispatched(pool, batch_id)
    assert first is not None
    assert (await _row(pool, batch_id))["handler_dispatched_at"] == first

"""The store's COPY paths: staging requests and idempotent result writes."""

from __future__ import annotations

from durabatch.store import batches, requests, results
from durabatch.store.pool import Pool


async def _batch(pool: Pool, batch_id: str, n: int) -> None:
    async with pool.acquire() as conn:
        await batches.create_batch(
            conn,
            batch_id=batch_id,
            workflow_id=f"batch-{batch_id}",
            provider="openai",
            endpoint="/v1/chat/completions",
            model="gpt-4o-mini",
            metadata={"team": "x"},
        )
        records = [
            (batch_id, f"r{i}", i, 0, 0, {"messages": [{"role": "user", "content": f"hi {i}"}]}, 40)
            for i in range(n)
        ]
        await requests.copy_requests(conn, records)


def _result(batch_id: str, custom_id: str, outcome: str = "succeeded") -> tuple[object, ...]:
    return (batch_id, custom_id, 0, outcome, 200, {"ok": custom_id}, None, 10, 5, 0, None)


async def test_copy_requests_and_stream_shard(pool: Pool) -> None:
    await _batch(pool, "copy1", 5000)
    seen = [cid async for cid, _ in requests.iter_shard(pool, "copy1", 0, 0, chunk=700)]
    assert seen == [f"r{i}" for i in range(5000)]
    body = await pool.fetchval("SELECT body FROM requests WHERE batch_id = 'copy1' AND custom_id = 'r7'")
    assert body == {"messages": [{"role": "user", "content": "hi 7"}]}


async def test_result_writes_are_idempotent_and_drop_strays(pool: Pool) -> None:
    await _batch(pool, "copy2", 10)
    rows = [_result("copy2", f"r{i}") for i in range(6)] + [_result("copy2", "not-a-request")]
    async with pool.acquire() as conn:
        first = await results.write_results(conn, "copy2", 0, 0, rows)
        again = await results.write_results(conn, "copy2", 0, 0, [*rows, _result("copy2", "r1")])
        resolved = await batches.reconcile(
            conn, "copy2", outcome="failed", code="missing", reason="not in output"
        )
        again_resolved = await batches.reconcile(conn, "copy2", outcome="failed", code="missing", reason="x")
        totals = await batches.totals(conn, "copy2")
    assert (first, again) == (6, 0)
    assert (resolved, again_resolved) == (4, 0)
    assert totals["total"] == 10 and totals["succeeded"] == 6 and totals["failed"] == 4
    assert totals["input_tokens"] == 60
    per_request = await pool.fetchval(
        "SELECT max(c) FROM (SELECT count(*) c FROM results WHERE batch_id = 'copy2' GROUP BY custom_id) s"
    )
    assert per_request == 1

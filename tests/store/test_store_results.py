"""durabatch.store.results on the real PostgreSQL: which requests of a shard still need a result,
a shard's totals, and reading each request's final result back in line order."""

from __future__ import annotations

from decimal import Decimal

from durabatch.store import requests, results
from durabatch.store.pool import Pool
from tests.store.helpers import new_id, result_row, staged_batch


async def _write(pool: Pool, batch_id: str, rows: list[tuple[object, ...]]) -> None:
    async with pool.acquire() as conn:
        assert await results.write_results(conn, batch_id, rows) == len(rows)


async def test_shard_progress_splits_one_shard_and_round(pool: Pool) -> None:
    batch_id = new_id()
    await staged_batch(pool, batch_id, 6, shards=2)  # shard 0: r0 r2 r4
    await _write(pool, batch_id, [result_row(batch_id, "r0"), result_row(batch_id, "r1")])
    progress = await results.shard_progress(pool, batch_id, 0, 0)
    assert (progress.done, progress.pending) == ({"r0"}, {"r2", "r4"})
    async with pool.acquire() as conn:  # a connection works as well as the pool
        assert (await results.shard_progress(conn, batch_id, 1, 0)).pending == {"r3", "r5"}
    # a result of another round does not count for this one
    await requests.move_to_round(pool, batch_id, 0, 0, 1)
    moved = await results.shard_progress(pool, batch_id, 0, 1)
    assert (moved.done, moved.pending) == (set(), {"r0", "r2", "r4"})


async def test_shard_totals_sum_one_shard_and_an_unknown_price_makes_the_cost_unknown(pool: Pool) -> None:
    batch_id = new_id()
    await staged_batch(pool, batch_id, 4, shards=2)
    await _write(
        pool,
        batch_id,
        [
            result_row(batch_id, "r0", tokens=(10, 4, 1), cost=Decimal("0.5")),
            result_row(batch_id, "r2", outcome="failed", tokens=(0, 0, 0), cost=None),
            result_row(batch_id, "r1", tokens=(7, 7, 7), cost=None),  # shard 1: price unknown
        ],
    )
    zero = await results.shard_totals(pool, batch_id, 0, 0)
    assert zero == results.ShardTotals(
        succeeded=1, not_succeeded=1, input_tokens=10, output_tokens=4, cached_tokens=1, cost_usd=0.5
    )
    async with pool.acquire() as conn:
        one = await results.shard_totals(conn, batch_id, 1, 0)
    assert (one.succeeded, one.input_tokens, one.cost_usd) == (1, 7, None)


async def test_iter_results_reads_final_results_in_line_order(pool: Pool) -> None:
    batch_id = new_id()
    await staged_batch(pool, batch_id, 5)
    await _write(
        pool,
        batch_id,
        [result_row(batch_id, f"r{i}", outcome="failed" if i % 2 else "succeeded") for i in (4, 2, 0, 1, 3)],
    )
    # r3 is sent again in a later round: its round-0 result is no longer its final one
    await requests.set_shards(pool, batch_id, [(3, 1)])
    await requests.move_to_round(pool, batch_id, 1, 0, 1)
    await _write(pool, batch_id, [result_row(batch_id, "r3", round_=1)])

    rows = [r async for r in results.iter_results(pool, batch_id, chunk=2)]
    assert [(r["custom_id"], r["round"], r["outcome"]) for r in rows] == [
        ("r0", 0, "succeeded"),
        ("r1", 0, "failed"),
        ("r2", 0, "succeeded"),
        ("r3", 1, "succeeded"),
        ("r4", 0, "succeeded"),
    ]
    assert rows[0]["line"].startswith('{"custom_id": "r0"') and rows[0]["body"] is None
    failed = [r["custom_id"] async for r in results.iter_results(pool, batch_id, outcome="failed")]
    assert failed == ["r1"]
    assert [r async for r in results.iter_results(pool, new_id())] == []

"""durabatch.store.requests on the real PostgreSQL: shards streamed back in line order, sizes,
rounds, re-sharding and the clean slate before a client stages a batch id."""

from __future__ import annotations

from durabatch.store import batches, provider_batches, requests
from durabatch.store.pool import Pool
from tests.store.helpers import new_id, staged_batch


async def _statuses(pool: Pool, batch_id: str) -> dict[str, tuple[int, str, int]]:
    rows = await pool.fetch(
        "SELECT custom_id, round, status, attempts FROM requests WHERE batch_id = $1", batch_id
    )
    return {r["custom_id"]: (r["round"], r["status"], r["attempts"]) for r in rows}


async def test_iter_shard_streams_one_shard_in_line_order_across_chunks(pool: Pool) -> None:
    batch_id = new_id()
    await staged_batch(pool, batch_id, 9, shards=2)
    got = [cid async for cid, _ in requests.iter_shard(pool, batch_id, 1, 0, chunk=2)]
    assert got == ["r1", "r3", "r5", "r7"]
    bodies = [body async for _, body in requests.iter_shard(pool, batch_id, 0, 0, chunk=100)]
    assert bodies[0] == {"messages": [{"content": "hi 0"}]} and len(bodies) == 5
    assert [x async for x in requests.iter_shard(pool, batch_id, 0, 1)] == [], "nothing in round 1 yet"


async def test_iter_shard_prefetch_ends_and_stops_cleanly(pool: Pool) -> None:
    """The next chunk is fetched ahead: a shard of whole chunks still ends, and a consumer that
    stops early (a failed upload) leaves no fetch running and every connection back in the pool."""
    batch_id = new_id()
    await staged_batch(pool, batch_id, 6)
    assert [c async for c, _ in requests.iter_shard(pool, batch_id, 0, 0, chunk=3)] == [
        f"r{i}" for i in range(6)
    ]
    rows = requests.iter_shard(pool, batch_id, 0, 0, chunk=2)
    assert (await anext(rows))[0] == "r0"
    await rows.aclose()
    assert pool.get_idle_size() == pool.get_size()
    assert await pool.fetchval("SELECT count(*) FROM requests WHERE batch_id = $1", batch_id) == 6


async def test_sizes_by_shard_and_line(pool: Pool) -> None:
    batch_id = new_id()
    await staged_batch(pool, batch_id, 5, shards=2)
    assert await requests.shard_size(pool, batch_id, 0, 0) == (3, 120)
    assert await requests.shard_size(pool, batch_id, 5, 0) == (0, 0)
    assert await requests.shard_sizes(pool, batch_id) == [(0, 3, 120), (1, 2, 80)]
    assert await requests.line_sizes(pool, batch_id) == [(i, 40) for i in range(5)]


async def test_a_new_round_resets_the_shard_and_submits_count_attempts(pool: Pool) -> None:
    batch_id = new_id()
    await staged_batch(pool, batch_id, 4, shards=2)
    await requests.mark_submitted(pool, batch_id, 0, 0)
    await requests.mark_submitted(pool, batch_id, 0, 0)  # already submitted: not counted twice
    assert await requests.move_to_round(pool, batch_id, 0, 0, 1) == 2
    assert await requests.move_to_round(pool, batch_id, 0, 0, 1) == 0, "nothing left in round 0"
    await requests.mark_submitted(pool, batch_id, 0, 1)
    assert await _statuses(pool, batch_id) == {
        "r0": (1, "submitted", 2),
        "r2": (1, "submitted", 2),
        "r1": (0, "pending", 0),
        "r3": (0, "pending", 0),
    }
    assert await requests.shard_size(pool, batch_id, 0, 1) == (2, 80)


async def test_set_shards_moves_lines_of_the_first_round(pool: Pool) -> None:
    batch_id = new_id()
    await staged_batch(pool, batch_id, 4)
    await requests.set_shards(pool, batch_id, [(2, 1), (3, 1)])
    assert await requests.shard_sizes(pool, batch_id) == [(0, 2, 80), (1, 2, 80)]
    assert [c async for c, _ in requests.iter_shard(pool, batch_id, 1, 0)] == ["r2", "r3"]


async def test_clear_unstarted_frees_only_an_id_nothing_started_for(pool: Pool) -> None:
    fresh, staged, owned, sent = new_id(), new_id(), new_id(), new_id()
    for batch_id in (staged, owned, sent):
        await staged_batch(pool, batch_id, 2)
    await batches.claim_batch(
        pool,
        batch_id=owned,
        workflow_id=f"batch-{owned}",
        owner_run_id="run-1",
        provider="openai",
        endpoint="/v1/chat/completions",
        model=None,
        metadata={},
    )
    await provider_batches.record_attempt(
        pool, batch_id=sent, shard=0, round_=0, provider="openai", tag="t", request_count=2
    )
    async with pool.acquire() as conn, conn.transaction():
        assert await requests.clear_unstarted(conn, fresh) is True
        assert await requests.clear_unstarted(conn, staged) is True
        assert await requests.clear_unstarted(conn, owned) is False
        assert await requests.clear_unstarted(conn, sent) is False
    assert await batches.get_batch(pool, staged) is None
    assert await pool.fetchval("SELECT count(*) FROM requests WHERE batch_id = $1", staged) == 0
    for kept in (owned, sent):
        assert await pool.fetchval("SELECT count(*) FROM requests WHERE batch_id = $1", kept) == 2


async def test_delete_requests_clears_one_batch(pool: Pool) -> None:
    gone, kept = new_id(), new_id()
    await staged_batch(pool, gone, 3)
    await staged_batch(pool, kept, 3)
    async with pool.acquire() as conn:
        await requests.delete_requests(conn, gone)
    assert await requests.shard_sizes(pool, gone) == []
    assert await requests.shard_sizes(pool, kept) == [(0, 3, 120)]

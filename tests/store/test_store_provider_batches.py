"""durabatch.store.provider_batches on the real PostgreSQL: the attempt row written before the
provider is called, and what later calls add to it."""

from __future__ import annotations

from datetime import datetime, timedelta

from durabatch.store import provider_batches as pb
from durabatch.store.pool import Pool
from tests.store.helpers import new_id, staged_batch


async def _attempt(
    pool: Pool, batch_id: str, shard: int = 0, provider: str = "openai", tag: str = "t1"
) -> str:
    row = await pb.record_attempt(
        pool, batch_id=batch_id, shard=shard, round_=0, provider=provider, tag=tag, request_count=3
    )
    return str(row["tag"])


async def test_record_attempt_returns_the_first_attempt_on_a_retry(pool: Pool) -> None:
    batch_id = new_id()
    await staged_batch(pool, batch_id, 3)
    first = await pb.record_attempt(
        pool, batch_id=batch_id, shard=0, round_=0, provider="openai", tag="t1", request_count=3
    )
    again = await pb.record_attempt(
        pool, batch_id=batch_id, shard=0, round_=0, provider="openai", tag="t2", request_count=9
    )
    assert (again["tag"], again["request_count"]) == ("t1", 3)
    assert again["attempt_started_at"] == first["attempt_started_at"], "the retry keeps the attempt's time"
    assert again["provider_batch_id"] is None
    assert await pool.fetchval("SELECT count(*) FROM provider_batches WHERE batch_id = $1", batch_id) == 1


async def test_the_input_file_is_kept_until_the_batch_is_known(pool: Pool) -> None:
    batch_id = new_id()
    await staged_batch(pool, batch_id, 3)
    await _attempt(pool, batch_id)
    await pb.record_input_file(pool, batch_id=batch_id, shard=0, round_=0, input_file_id="file-1")
    await pb.record_submitted(
        pool, batch_id=batch_id, shard=0, round_=0, provider_batch_id="batch-1", input_file_id=None
    )
    row = await pb.get(pool, batch_id, 0, 0)
    assert row is not None
    assert (row["provider_batch_id"], row["input_file_id"]) == ("batch-1", "file-1")
    submitted_at = row["submitted_at"]
    assert submitted_at is not None
    # after the batch is known a later upload changes nothing, and a repeat keeps the first submit time
    await pb.record_input_file(pool, batch_id=batch_id, shard=0, round_=0, input_file_id="file-2")
    await pb.record_submitted(
        pool, batch_id=batch_id, shard=0, round_=0, provider_batch_id="batch-1", input_file_id=None
    )
    row = await pb.get(pool, batch_id, 0, 0)
    assert row is not None
    assert (row["input_file_id"], row["submitted_at"]) == ("file-1", submitted_at)
    assert await pb.get(pool, batch_id, 1, 0) is None


async def test_record_status_keeps_the_first_end_and_ingest(pool: Pool) -> None:
    batch_id = new_id()
    await staged_batch(pool, batch_id, 3)
    await _attempt(pool, batch_id)

    async def status(state: str, terminal: bool, ingested: bool = False, out: str | None = None) -> None:
        await pb.record_status(
            pool,
            batch_id=batch_id,
            shard=0,
            round_=0,
            provider_status=state,
            terminal=terminal,
            output_file_id=out,
            ingested=ingested,
        )

    await status("in_progress", False)
    row = await pb.get(pool, batch_id, 0, 0)
    assert row is not None and row["ended_at"] is None and row["provider_status"] == "in_progress"
    await status("completed", True, out="out-1")
    ended = await pb.get(pool, batch_id, 0, 0)
    assert ended is not None and ended["ended_at"] is not None and ended["ingested_at"] is None
    await status("completed", True, ingested=True)
    row = await pb.get(pool, batch_id, 0, 0)
    assert row is not None
    assert row["ended_at"] == ended["ended_at"] and row["ingested_at"] is not None
    assert row["output_file_id"] == "out-1", "a status without a file keeps the one recorded"


async def test_known_ids_are_one_providers_recent_submitted_batches(pool: Pool) -> None:
    batch_id = new_id()
    await staged_batch(pool, batch_id, 3, shards=3)
    # the database's clock (attempt_started_at is its now()), read after the earlier tests' attempts
    since: datetime = await pool.fetchval("SELECT clock_timestamp()")
    await _attempt(pool, batch_id, shard=0)
    await _attempt(pool, batch_id, shard=1)
    await _attempt(pool, batch_id, shard=2, provider="anthropic")
    for shard, provider_batch_id in ((0, "batch-a"), (2, "msgbatch-c")):
        await pb.record_submitted(
            pool,
            batch_id=batch_id,
            shard=shard,
            round_=0,
            provider_batch_id=provider_batch_id,
            input_file_id=None,
        )
    assert await pb.known_ids(pool, "openai", since) == frozenset({"batch-a"}), "shard 1 was never created"
    assert await pb.known_ids(pool, "anthropic", since) == frozenset({"msgbatch-c"})
    assert await pb.known_ids(pool, "openai", since + timedelta(minutes=1)) == frozenset()

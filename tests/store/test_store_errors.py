"""Driver errors leave the store as the store's own types, from real queries on real PostgreSQL."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from durabatch.store import (
    StoreConflict,
    StoreDataError,
    StoreError,
    StoreUnavailable,
    batches,
    connection,
    create_pool,
    handlers,
    requests,
    transaction,
)
from durabatch.store.errors import store_errors
from durabatch.store.pool import Executor, Pool, RawJSON
from tests.conftest import free_port


async def _create(conn: Executor, batch_id: str, endpoint: str = "/v1/chat/completions") -> None:
    await batches.create_batch(
        conn,
        batch_id=batch_id,
        workflow_id=f"batch-{batch_id}",
        provider="openai",
        endpoint=endpoint,
        model="gpt-4o-mini",
        metadata={},
    )


async def test_a_nul_byte_is_a_store_data_error(pool: Pool) -> None:
    with pytest.raises(StoreDataError) as caught:
        await _create(pool, "err-nul", endpoint="/v1/chat\x00completions")
    assert caught.value.sqlstate == "22021"  # character_not_in_repertoire
    assert isinstance(caught.value.__cause__, asyncpg.PostgresError), "the driver's error is the cause"
    assert await batches.get_batch(pool, "err-nul") is None


async def test_a_value_out_of_range_is_a_store_data_error(pool: Pool) -> None:
    # refused by the driver before it is sent (an integer column, a value beyond int32)
    with pytest.raises(StoreDataError):
        await handlers.record_failure(pool, "err-range", 2**40, "boom")


async def test_invalid_json_text_through_copy_is_a_store_data_error(pool: Pool) -> None:
    await _create(pool, "err-json")
    async with transaction(pool) as conn:
        with pytest.raises(StoreDataError) as caught:
            await requests.copy_requests(conn, [("err-json", "r0", 1, 0, 0, RawJSON(b"{not json"), 9)])
    assert caught.value.sqlstate == "22P02"  # invalid_text_representation


async def test_a_repeated_key_is_a_store_conflict(pool: Pool) -> None:
    await _create(pool, "err-dup")
    record: tuple[object, ...] = ("err-dup", "r0", 1, 0, 0, {"messages": []}, 10)
    async with connection(pool) as conn:
        await requests.copy_requests(conn, [record])
        with pytest.raises(StoreConflict) as caught:
            await requests.copy_requests(conn, [record])
    assert caught.value.sqlstate == "23505"


async def test_a_closed_pool_is_unavailable(database_url: str) -> None:
    closed = await create_pool(database_url, min_size=1, max_size=1)
    await closed.close()
    with pytest.raises(StoreUnavailable):
        await batches.get_batch(closed, "anything")
    with pytest.raises(StoreUnavailable):
        async with connection(closed):
            pass


async def test_a_connection_killed_under_a_query_is_unavailable(pool: Pool) -> None:
    async with connection(pool) as conn:
        pid = await conn.fetchval("SELECT pg_backend_pid()")
        await pool.execute("SELECT pg_terminate_backend($1)", pid)
        await asyncio.sleep(0.2)
        with pytest.raises(StoreUnavailable):
            await batches.get_batch(conn, "anything")


async def test_a_deadlock_is_unavailable(pool: Pool) -> None:
    """Two transactions taking two locks in opposite orders: PostgreSQL aborts one (40P01), and
    the other, once the victim's transaction has rolled back, gets both."""
    both_hold_one = asyncio.Barrier(2)

    async def lock(first: int, second: int) -> None:
        async with transaction(pool) as conn:
            await conn.execute("SELECT pg_advisory_xact_lock($1)", first)
            await both_hold_one.wait()
            with store_errors():
                await conn.execute("SELECT pg_advisory_xact_lock($1)", second)

    outcomes = await asyncio.gather(lock(1, 2), lock(2, 1), return_exceptions=True)
    failures = [o for o in outcomes if isinstance(o, BaseException)]
    assert len(failures) == 1, outcomes
    assert isinstance(failures[0], StoreUnavailable) and failures[0].sqlstate == "40P01"


async def test_an_unreachable_server_is_unavailable_without_the_password() -> None:
    with pytest.raises(StoreUnavailable) as caught:
        await create_pool(f"postgresql://u:sekret@127.0.0.1:{free_port()}/db", min_size=1, timeout=5)
    assert "sekret" not in str(caught.value) and "***" in str(caught.value)


async def test_errors_of_the_block_pass_untouched_and_roll_back(pool: Pool) -> None:
    """`transaction(pool)` translates the store's own failures only: an OSError from the caller's
    block (reading a requests file) is not a database outage."""
    with pytest.raises(OSError) as caught:
        async with transaction(pool) as conn:
            await _create(conn, "err-block")
            raise FileNotFoundError("requests.jsonl")
    assert not isinstance(caught.value, StoreError)
    assert await batches.get_batch(pool, "err-block") is None

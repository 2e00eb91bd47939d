"""durabatch.store.handlers on the real PostgreSQL: the record that runs a handler at most once
after a success."""

from __future__ import annotations

from durabatch.store import handlers
from durabatch.store.pool import Pool
from tests.store.helpers import new_id, staged_batch


async def _row(pool: Pool, batch_id: str, index: int) -> tuple[str, int, str | None, bool]:
    row = await pool.fetchrow(
        """SELECT status, attempts, last_error, succeeded_at IS NOT NULL AS done FROM handler_deliveries
            WHERE batch_id = $1 AND handler_index = $2""",
        batch_id,
        index,
    )
    assert row is not None
    return row["status"], row["attempts"], row["last_error"], row["done"]


async def test_attempts_are_counted_until_a_success_then_never_again(pool: Pool) -> None:
    batch_id = new_id()
    await staged_batch(pool, batch_id, 0)
    assert await handlers.delivery_status(pool, batch_id, 0) is None
    async with pool.acquire() as conn:
        assert await handlers.begin_attempt(conn, batch_id, 0, "webhook") == "new"
        assert await handlers.begin_attempt(conn, batch_id, 0, "webhook") == "running"
        await handlers.record_failure(conn, batch_id, 0, "HTTP 503 " + "x" * 5000)
        status, attempts, error, done = await _row(pool, batch_id, 0)
        assert (status, attempts, done) == ("failed", 2, False)
        assert error is not None and error.startswith("HTTP 503") and len(error) == 2000
        assert await handlers.begin_attempt(conn, batch_id, 0, "webhook") == "failed"
        await handlers.record_success(conn, batch_id, 0)
        assert await _row(pool, batch_id, 0) == ("succeeded", 3, None, True)
        # after the success: not run again, not counted, and a late failure cannot undo it
        assert await handlers.begin_attempt(conn, batch_id, 0, "webhook") == "succeeded"
        await handlers.record_failure(conn, batch_id, 0, "late")
    assert await _row(pool, batch_id, 0) == ("succeeded", 3, None, True)
    assert await handlers.delivery_status(pool, batch_id, 0) == "succeeded"


async def test_each_handler_of_a_batch_has_its_own_record(pool: Pool) -> None:
    batch_id = new_id()
    await staged_batch(pool, batch_id, 0)
    async with pool.acquire() as conn:
        await handlers.begin_attempt(conn, batch_id, 0, "webhook")
        await handlers.record_success(conn, batch_id, 0)
        assert await handlers.begin_attempt(conn, batch_id, 1, "activity") == "new"
    assert await handlers.delivery_status(pool, batch_id, 0) == "succeeded"
    assert await handlers.delivery_status(pool, batch_id, 1) == "running"
    kinds = await pool.fetch(
        "SELECT handler_type FROM handler_deliveries WHERE batch_id = $1 ORDER BY handler_index", batch_id
    )
    assert [r["handler_type"] for r in kinds] == ["webhook", "activity"]

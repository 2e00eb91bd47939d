"""The account sweep's two queries on `provider_batches`: the window it lists, and the changed
statuses of ours it records (and nothing of anyone else's)."""

from __future__ import annotations

import uuid

from durabatch.store import batches, provider_batches
from durabatch.store.pool import Pool


async def _submitted(pool: Pool, provider: str, batch_id: str, provider_batch_id: str) -> None:
    await batches.create_batch(
        pool,
        batch_id=batch_id,
        workflow_id=f"batch-{batch_id}",
        provider=provider,
        endpoint="/v1/chat/completions",
        model=None,
        metadata={},
    )
    await provider_batches.record_attempt(
        pool, batch_id=batch_id, shard=0, round_=0, provider=provider, tag=f"t-{batch_id}", request_count=1
    )
    await provider_batches.record_submitted(
        pool, batch_id=batch_id, shard=0, round_=0, provider_batch_id=provider_batch_id, input_file_id=None
    )


async def test_the_sweep_sees_only_watched_batches_of_ours_and_records_changes_once(pool: Pool) -> None:
    # a provider name of its own: the store is shared with other tests
    provider = f"sweep-{uuid.uuid4().hex[:8]}"
    assert await provider_batches.sweep_window(pool, provider) is None
    live, done, seen_ended = (f"{provider}-{name}" for name in ("live", "done", "ended"))
    await _submitted(pool, provider, done, "pb-done")
    await _submitted(pool, provider, live, "pb-live")
    await _submitted(pool, provider, seen_ended, "pb-ended")
    await pool.execute("UPDATE batches SET status = 'completed' WHERE batch_id = $1", done)
    await provider_batches.record_status(
        pool, batch_id=seen_ended, shard=0, round_=0, provider_status="completed", terminal=True
    )

    # the window opens at the one watched row (the ended batch and the seen-ended row do not count)
    row = await provider_batches.get(pool, live, 0, 0)
    assert row is not None
    assert await provider_batches.sweep_window(pool, provider) == row["attempt_started_at"]

    listed = {
        "pb-live": "in_progress",
        "pb-done": "cancelled",
        "pb-ended": "failed",
        "pb-foreign": "completed",
    }
    changes = await provider_batches.record_swept(pool, provider, listed)
    assert [(c.batch_id, c.workflow_id, c.provider_batch_id, c.provider_status) for c in changes] == [
        (live, f"batch-{live}", "pb-live", "in_progress")
    ]
    assert await provider_batches.record_swept(pool, provider, listed) == []  # nothing changed since
    assert (
        await provider_batches.record_swept(pool, "openai", {"pb-live": "completed"}) == []
    )  # other provider
    (change,) = await provider_batches.record_swept(pool, provider, {"pb-live": "completed"})
    assert change.provider_status == "completed"
    # the sweep records the status only: ending the row stays the batch's own poll's to do
    after = await provider_batches.get(pool, live, 0, 0)
    assert after is not None and after["provider_status"] == "completed" and after["ended_at"] is None
    ended = await provider_batches.get(pool, seen_ended, 0, 0)
    assert ended is not None and ended["provider_status"] == "completed"

    await pool.execute("UPDATE batches SET status = 'cancelled' WHERE batch_id = $1", live)
    assert await provider_batches.sweep_window(pool, provider) is None

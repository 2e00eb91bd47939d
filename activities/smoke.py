"""The smoke activity: one write and one read against the store."""

from __future__ import annotations

from temporalio import activity

from durabatch.store.pool import Pool


class SmokeActivities:
    def __init__(self, pool: Pool) -> None:
        self._pool = pool

    @activity.defn(name="smoke_write_and_read")
    async def write_and_read(self, note: str) -> str:
        row_id = await self._pool.fetchval("INSERT INTO smoke_checks (note) VALUES ($1) RETURNING id", note)
        stored: str = await self._pool.fetchval("SELECT note FROM smoke_checks WHERE id = $1", row_id)
        return stored

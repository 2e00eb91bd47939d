"""Rows for the store tests, written through the store's own queries."""

from __future__ import annotations

import json
import uuid
from decimal import Decimal

from durabatch.store import batches, requests
from durabatch.store.pool import Pool


def new_id(prefix: str = "b") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


async def staged_batch(pool: Pool, batch_id: str, n: int, *, shards: int = 1) -> None:
    """A batch row and `n` requests (r0, r1, ...) dealt round-robin over `shards`, 40 bytes each."""
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
        if n:
            records = [
                (batch_id, f"r{i}", i, i % shards, 0, {"messages": [{"content": f"hi {i}"}]}, 40)
                for i in range(n)
            ]
            await requests.copy_requests(conn, records)


def result_row(
    batch_id: str,
    custom_id: str,
    *,
    round_: int = 0,
    outcome: str = "succeeded",
    tokens: tuple[int, int, int] = (10, 5, 0),
    cost: Decimal | None = Decimal("0.001"),
) -> tuple[object, ...]:
    """A row shaped as durabatch.store.results.RESULT_COLUMNS."""
    line = json.dumps({"custom_id": custom_id, "response": {"status_code": 200, "body": {"ok": custom_id}}})
    error = None if outcome == "succeeded" else {"code": "x", "message": "failed"}
    return (batch_id, custom_id, round_, outcome, 200, line, error, *tokens, cost)

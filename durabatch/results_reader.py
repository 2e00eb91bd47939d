"""A batch's results read from the store: the one path behind `BatchHandle.results()` and
`durabatch results`, which differ only in how they render each row (durabatch/results_format.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from durabatch.client_errors import BatchNotFound
from durabatch.store import batches
from durabatch.store.pool import Pool
from durabatch.store.results import iter_results

__all__ = ["BatchResults", "open_results"]


@dataclass(frozen=True)
class BatchResults:
    """The provider whose line shapes the rows have, and the rows in input order."""

    provider: str
    rows: AsyncIterator[dict[str, Any]]


async def open_results(
    pool: Pool, batch_id: str, outcome: str | None = None, *, all_rounds: bool = False
) -> BatchResults:
    """Each request's final result (with `all_rounds`, every attempt's), streamed a chunk at a
    time; BatchNotFound if the store has no such batch (checked before the first row, so a typo
    is an error and not an empty stream)."""
    batch = await batches.get_batch(pool, batch_id)
    if batch is None:
        raise BatchNotFound(f"no batch {batch_id!r} in the store")

    async def rows() -> AsyncIterator[dict[str, Any]]:
        async for row in iter_results(pool, batch_id, outcome=outcome, all_rounds=all_rounds):
            yield dict(row)

    return BatchResults(provider=str(batch["provider"]), rows=rows())

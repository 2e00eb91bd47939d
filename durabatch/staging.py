"""Staging a batch's requests into PostgreSQL: validate every line, COPY in chunks, plan shards.

Used on both sides of a start:
- client side (`BatchClient.start(requests_path=...)`, `durabatch submit FILE`): the file is staged
  before the workflow exists, in one transaction with the batch row, so a bad file leaves nothing
  behind (the batch id stays free) and the workflow, started with `requests_uri="store:"`, finds its
  requests already in the store;
- worker side (activity `stage_requests`) for inline requests and a `requests_uri` the worker reads.

Errors: `InvalidRequestLine` / `InvalidRequests` (from `durabatch.requests_file`) for bad input,
`StagedElsewhere` when the batch id belongs to a batch that has already started.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from durabatch.estimate import CostEstimate
from durabatch.providers.base import ProviderLimits
from durabatch.requests_file import PlannedShard, RequestsValidator, ShardPlanner, iter_lines
from durabatch.store import batches, requests
from durabatch.store.pool import Conn, Pool, transaction

__all__ = [
    "STAGED_URI",
    "RequestsUriRefused",
    "StagedElsewhere",
    "StagingOutcome",
    "check_requests_uri",
    "estimate_staged",
    "file_lines",
    "plan_of_staged",
    "stage_client_file",
    "stage_lines",
]

#: The `requests_uri` of a batch whose requests a client staged before starting its workflow.
STAGED_URI = "store:"

_COPY_CHUNK = 2000
#: lines validated between two chances for the COPY in flight to send
_YIELD_EVERY = 64
_READ_CHUNK = 1 << 20


class StagedElsewhere(Exception):
    """The batch id is held by a batch that has already started (or been sent); ids are never reused."""


@dataclass
class StagingOutcome:
    request_count: int
    byte_size: int
    model: str | None
    shards: list[PlannedShard] = field(default_factory=list)
    #: None for requests a client staged, unless `estimate_staged` filled it
    estimate: CostEstimate | None = None


async def file_lines(path: Path) -> AsyncGenerator[tuple[int, bytes], None]:
    """(line number, raw line) of a local file, read a chunk at a time."""
    with path.open("rb") as fh:
        for item in iter_lines(iter(lambda: fh.read(_READ_CHUNK), b"")):
            yield item


async def stage_lines(
    conn: Conn,
    batch_id: str,
    validator: RequestsValidator,
    lines: AsyncIterator[tuple[int, Any]],
    *,
    source: str,
    progress: Callable[[int], None] | None = None,
) -> StagingOutcome:
    """Replace the batch's staged requests with `lines`, validated; call inside a transaction so
    a refused line leaves nothing staged. `source` names the input in whole-file errors."""
    await requests.delete_requests(conn, batch_id)
    # While PostgreSQL works through one chunk's COPY (in its own process), the next chunk is
    # validated here: at most one COPY in flight on the connection.
    in_flight: asyncio.Future[None] | None = None
    buffer: list[tuple[Any, ...]] = []
    try:
        async for line_no, raw in lines:
            if in_flight is not None and not line_no % _YIELD_EVERY:
                # Validating a chunk never suspends, so the COPY in flight (which waits for its
                # socket to drain) would only move at the next chunk's `await`: the two took turns.
                await asyncio.sleep(0)
            row = validator.feed(line_no, raw)
            if row is None:
                continue
            buffer.append((batch_id, row.custom_id, row.line_no, row.shard, 0, row.body, row.byte_size))
            if len(buffer) >= _COPY_CHUNK:
                if in_flight is not None:
                    await in_flight
                in_flight = asyncio.ensure_future(requests.copy_requests(conn, buffer))
                buffer = []
                await asyncio.sleep(0)  # let the COPY send its rows before validating on
                if progress is not None:
                    progress(line_no)
        if in_flight is not None:
            await in_flight
            in_flight = None
        if buffer:
            await requests.copy_requests(conn, buffer)
    finally:
        if in_flight is not None and not in_flight.done():
            # A refused line: let the chunk in flight finish (cancelling a COPY midway can leave
            # the connection unusable for the rollback), then the transaction is rolled back.
            with contextlib.suppress(Exception):
                await in_flight
        if isinstance(lines, AsyncGenerator):
            # A refused line stops the loop early: close the source now (a file's generator would
            # otherwise hold the file open until garbage collection, maybe after the event loop)
            await lines.aclose()
    shards = validator.finish(source)
    return StagingOutcome(validator.count, validator.total_bytes, validator.model, shards, validator.estimate)


async def stage_client_file(
    pool: Pool,
    *,
    batch_id: str,
    workflow_id: str,
    provider: str,
    endpoint: str,
    model: str | None,
    metadata: dict[str, str],
    path: Path,
    accept: Callable[[StagingOutcome], None] | None = None,
    limits: ProviderLimits | None = None,
) -> StagingOutcome:
    """Stage a local file before its workflow starts: the batch row and every request in one
    transaction. A batch id whose row a run already owns (or has sent) raises StagedElsewhere; an
    unowned row (a client that staged and then never started) is staged again. `accept` sees the
    outcome before the commit: whatever it raises leaves nothing staged (the cost limit)."""
    validator = RequestsValidator(provider, endpoint, model, limits)
    async with transaction(pool) as conn:
        if not await requests.clear_unstarted(conn, batch_id):
            raise StagedElsewhere(f"batch {batch_id!r} already exists")
        await batches.create_batch(
            conn,
            batch_id=batch_id,
            workflow_id=workflow_id,
            provider=provider,
            endpoint=endpoint,
            model=model,
            metadata=metadata,
        )
        outcome = await stage_lines(conn, batch_id, validator, file_lines(path), source=str(path))
        if accept is not None:
            accept(outcome)
        await batches.set_status(
            conn, batch_id, "pending", model=outcome.model, request_count=outcome.request_count
        )
    return outcome


async def plan_of_staged(conn: Conn, batch_id: str, limits: ProviderLimits) -> StagingOutcome | None:
    """The plan of requests a client staged, or None if nothing is staged. Shards the client
    planned with the providers' documented limits are re-planned if this worker's limits are smaller."""
    row = await batches.get_batch(conn, batch_id)
    if row is None or not row["request_count"]:
        return None
    shards = [PlannedShard(s, n, b) for s, n, b in await requests.shard_sizes(conn, batch_id)]
    if not shards:
        return None
    if any(s.request_count > limits.max_requests or s.byte_size > limits.max_bytes for s in shards):
        planner = ShardPlanner(limits)
        sizes = await requests.line_sizes(conn, batch_id)
        await requests.set_shards(
            conn, batch_id, [(line_no, planner.assign(size)) for line_no, size in sizes]
        )
        shards = planner.plans
    count = sum(s.request_count for s in shards)
    return StagingOutcome(count, sum(s.byte_size for s in shards), row["model"], shards)


async def estimate_staged(
    pool: Pool, batch_id: str, provider: str, endpoint: str, shards: list[PlannedShard]
) -> CostEstimate:
    """The cost estimate of requests a client staged, read back from the store (only a batch with
    a cost limit needs it: it reads every body)."""
    estimate = CostEstimate()
    for shard in shards:
        async for body, byte_size in requests.iter_sized_bodies(pool, batch_id, shard.shard, 0):
            estimate.add(provider, endpoint, body, byte_size)
    return estimate


class RequestsUriRefused(ValueError):
    """A `requests_uri` the worker's policy does not allow; the message names the setting."""


def check_requests_uri(uri: str, *, roots: list[Path], http_allowed: bool) -> str | Path:
    """The URL to fetch or the resolved local path to read, if the policy allows `uri`.

    Local paths must resolve (symlinks followed) under one of `roots` (DURABATCH_REQUESTS_ROOTS);
    http(s) URLs are allowed unless DURABATCH_REQUESTS_HTTP=false. Anything else is refused.
    """
    if uri.startswith(("http://", "https://")):
        if not http_allowed:
            raise RequestsUriRefused(
                f"requests_uri {uri!r}: http(s) sources are disabled on this worker (DURABATCH_REQUESTS_HTTP=false)"
            )
        return uri
    if "://" in uri and not uri.startswith("file://"):
        raise RequestsUriRefused(
            f"requests_uri {uri!r}: unsupported scheme; use a local path, file://, http(s):// or "
            f"{STAGED_URI!r} for requests staged by the client"
        )
    raw = Path(uri.removeprefix("file://"))
    if not raw.is_absolute():
        raise RequestsUriRefused(f"requests_uri {uri!r}: a local path must be absolute on the worker")
    path = raw.resolve()
    if not any(path.is_relative_to(root) for root in roots):
        allowed = os.pathsep.join(str(r) for r in roots)
        raise RequestsUriRefused(
            f"requests_uri {uri!r} is outside the directories this worker may read ({allowed}); "
            "set DURABATCH_REQUESTS_ROOTS on the worker to allow it, or stage the file from the client "
            "(`durabatch submit FILE`, `BatchClient.start(requests_path=...)`)"
        )
    return path

"""Background heartbeats for activities whose work has no natural progress points.

A SIGKILLed worker tells the server nothing: without heartbeats its activity is only retried
elsewhere when start_to_close fires (minutes). With a heartbeat timeout of a minute, a dead worker's
submit, staging or finalize is handed to another worker within that minute.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from temporalio import activity

__all__ = ["heartbeating"]


@contextlib.asynccontextmanager
async def heartbeating(every_seconds: float = 10.0) -> AsyncIterator[None]:
    """Heartbeat every `every_seconds` while the block runs. Not for activities that heartbeat a
    resume point (ingest): an empty heartbeat would replace it."""

    async def beat() -> None:
        while True:
            activity.heartbeat()
            await asyncio.sleep(every_seconds)

    task = asyncio.create_task(beat())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

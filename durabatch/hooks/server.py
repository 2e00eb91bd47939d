"""Serving the receiver: `durabatch hooks` and tests run the same uvicorn server in-process."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import uvicorn

from durabatch.hooks.app import HooksApp

__all__ = ["serve_hooks"]


@contextlib.asynccontextmanager
async def serve_hooks(app: HooksApp, host: str = "127.0.0.1", port: int = 8090) -> AsyncIterator[str]:
    """Serve `app` until the block exits; yields its base URL once it accepts connections (its
    startup, which connects the store and Temporal, has succeeded)."""
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="on", access_log=False)
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            if task.done():
                task.result()  # raises what stopped it (a port in use, a failed startup)
                raise RuntimeError("the webhook receiver stopped during startup")
            await asyncio.sleep(0.02)
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await task

"""Running the emulator: an async context manager for tests, a blocking entry for the CLI."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

from durabatch.emulator.app import build_app
from durabatch.emulator.config import EmulatorConfig
from durabatch.emulator.persist import autosave
from durabatch.emulator.state import EmulatorState

__all__ = ["RunningEmulator", "run_emulator", "serve_forever"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunningEmulator:
    url: str
    state: EmulatorState
    host: str
    port: int


@contextlib.asynccontextmanager
async def run_emulator(
    config: EmulatorConfig | None = None, *, host: str = "127.0.0.1", port: int = 0
) -> AsyncIterator[RunningEmulator]:
    """Serve on `host:port` (port 0 picks a free one) for the duration of the block."""
    state = EmulatorState(config or EmulatorConfig())
    async with contextlib.AsyncExitStack() as stack:
        if state.config.state_dir is not None:
            # Entered first so that it exits last: the final save sees every request served.
            await stack.enter_async_context(autosave(state, Path(state.config.state_dir)))
        runner = web.AppRunner(build_app(state), access_log=None, handle_signals=False)
        await runner.setup()
        stack.push_async_callback(runner.cleanup)
        site = web.TCPSite(runner, host, port, reuse_address=True)
        await site.start()
        bound_port = port
        for addr in runner.addresses:
            if isinstance(addr, tuple):
                bound_port = int(addr[1])
                break
        yield RunningEmulator(f"http://{host}:{bound_port}", state, host, bound_port)


async def _serve(config: EmulatorConfig, host: str, port: int) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with run_emulator(config, host=host, port=port) as emu:
        # The CLI's only output: subprocess users wait for this exact line.
        sys.stdout.write(f"durabatch emulator listening on {emu.url}\n")
        sys.stdout.flush()
        await stop.wait()


def serve_forever(host: str, port: int, api_keys: list[str], **options: Any) -> None:
    """Run until SIGINT or SIGTERM (with `state_dir`, saving the state there before exiting);
    `options` are EmulatorConfig fields (timings, state_dir, webhook_url, ...)."""
    config = EmulatorConfig(api_keys=list(api_keys), **options)
    asyncio.run(_serve(config, host, port))

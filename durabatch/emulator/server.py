"""Running the emulator: an async context manager for tests, a blocking entry for the CLI."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass

from aiohttp import web

from durabatch.emulator.app import build_app
from durabatch.emulator.config import EmulatorConfig
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
    runner = web.AppRunner(build_app(state), access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, host, port, reuse_address=True)
    await site.start()
    try:
        bound_port = port
        for addr in runner.addresses:
            if isinstance(addr, tuple):
                bound_port = int(addr[1])
                break
        yield RunningEmulator(f"http://{host}:{bound_port}", state, host, bound_port)
    finally:
        await runner.cleanup()


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


def serve_forever(
    host: str,
    port: int,
    api_keys: list[str],
    validating_seconds: float = 0.5,
    ms_per_request: float = 1.0,
    finalizing_seconds: float = 0.5,
    expire_after_seconds: float = 86400.0,
    realtime_rpm: int | None = None,
    realtime_tpm: int | None = None,
) -> None:
    """Run until SIGINT or SIGTERM."""
    config = EmulatorConfig(
        api_keys=list(api_keys),
        validating_seconds=validating_seconds,
        ms_per_request=ms_per_request,
        finalizing_seconds=finalizing_seconds,
        expire_after_seconds=expire_after_seconds,
        realtime_rpm=realtime_rpm,
        realtime_tpm=realtime_tpm,
    )
    asyncio.run(_serve(config, host, port))

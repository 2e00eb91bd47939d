"""The batch stack with its worker in a process of its own (`durabatch worker`), so that a test can
SIGKILL it in the middle of a batch and start another: what a crash of a deployed worker does
(activities abandoned mid-way, their heartbeats lost, the workflow's cache gone), which an
in-process worker shut down politely never shows.

Tests use `process_stack(...)`: the same `Stack` as the in-process one (client, pool, emulator
over HTTP, settings) plus `workers` to kill and restart."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from pydantic import SecretStr
from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client

from durabatch.emulator import EmulatorConfig, run_emulator
from durabatch.settings import Settings, _variable_for
from durabatch.store.pool import Pool
from tests.helpers import eventually
from tests.stack import API_KEY, Stack, emulator_config

BIN_DIR = Path(sys.executable).parent


def settings_environment(settings: Settings) -> dict[str, str]:
    """The environment variables that make `durabatch worker` read exactly these settings."""
    env: dict[str, str] = {}
    defaults = Settings.model_construct()
    for name in Settings.model_fields:
        value = getattr(settings, name)
        if value == getattr(defaults, name, object()) and name != "task_queue":
            continue
        if value is None:
            continue
        if isinstance(value, SecretStr):
            text = value.get_secret_value()
        elif isinstance(value, dict | list):
            text = json.dumps(value)
        elif isinstance(value, bool):
            text = "true" if value else "false"
        else:
            text = str(value)
        env[_variable_for(name)] = text
    return env


@dataclass
class WorkerProcesses:
    """`durabatch worker` processes on the stack's task queue; each logs to a file of its own."""

    client: Client
    settings: Settings
    log_dir: Path
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    killed: int = 0

    def _env(self) -> dict[str, str]:
        inherited = {k: v for k, v in os.environ.items() if not k.startswith("DURABATCH_")}
        keys = dict.fromkeys(("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GEMINI_API_KEY"), API_KEY)
        return {**inherited, **keys, **settings_environment(self.settings)}

    async def start(self) -> subprocess.Popen[bytes]:
        """A new worker process, returned once the server sees it polling the task queue."""
        log = (self.log_dir / f"worker-{len(self.procs) + 1}.log").open("ab")
        proc = subprocess.Popen(
            [str(BIN_DIR / "durabatch"), "worker"],
            env=self._env(),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        self.procs.append(proc)
        before = await self._pollers()
        await eventually(
            lambda: self._new_poller(before, proc),
            bool,
            timeout=60,
            interval=0.2,
            what=f"worker pid {proc.pid} polling {self.settings.task_queue}\n{self.logs()}",
        )
        return proc

    async def _pollers(self) -> set[str]:
        request = DescribeTaskQueueRequest(
            namespace=self.client.namespace,
            task_queue=TaskQueue(name=self.settings.task_queue),
            task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY,
        )
        response = await self.client.workflow_service.describe_task_queue(request)
        return {p.identity for p in response.pollers}

    async def _new_poller(self, before: set[str], proc: subprocess.Popen[bytes]) -> bool:
        if proc.poll() is not None:
            raise AssertionError(f"worker pid {proc.pid} exited with {proc.returncode}\n{self.logs()}")
        return any(identity.startswith(f"{proc.pid}@") for identity in await self._pollers() - before)

    def alive(self) -> list[subprocess.Popen[bytes]]:
        return [p for p in self.procs if p.poll() is None]

    def kill(self) -> None:
        """SIGKILL every live worker: no graceful shutdown, in-flight activities abandoned."""
        for proc in self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGKILL)
            proc.wait(10)
            self.killed += 1

    async def restart(self) -> subprocess.Popen[bytes]:
        self.kill()
        return await self.start()

    def logs(self, tail: int = 4000) -> str:
        return "\n".join(
            p.read_text(errors="replace")[-tail:] for p in sorted(self.log_dir.glob("worker-*.log"))
        )

    async def stop(self) -> None:
        for proc in self.alive():
            proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                await asyncio.to_thread(proc.wait, 30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)


@dataclass
class ProcessStack(Stack):
    workers: WorkerProcesses = field(kw_only=True)


@asynccontextmanager
async def process_stack(
    client: Client,
    pool: Pool,
    database_url: str,
    config: EmulatorConfig | None = None,
    *,
    log_dir: Path,
    **settings_fields: Any,
) -> AsyncIterator[ProcessStack]:
    """The emulator in this process (its admin API and counters at hand), settings pointed at it,
    and one `durabatch worker` process on a fresh task queue (more with `workers.start()`)."""
    async with run_emulator(config or emulator_config()) as emu, httpx.AsyncClient(timeout=30) as http:
        settings = Settings(
            task_queue=f"proc-{uuid.uuid4().hex[:8]}",
            database_url=database_url,
            temporal_address=client.service_client.config.target_host,
            temporal_namespace=client.namespace,
            openai_base_url=f"{emu.url}/v1",
            anthropic_base_url=emu.url,
            gemini_base_url=emu.url,
            requests_roots=tempfile.gettempdir(),
            **settings_fields,
        )
        log_dir.mkdir(parents=True, exist_ok=True)
        workers = WorkerProcesses(client=client, settings=settings, log_dir=log_dir)
        try:
            await workers.start()
            yield ProcessStack(
                client=client, pool=pool, emulator=emu, settings=settings, http=http, workers=workers
            )
        finally:
            await workers.stop()

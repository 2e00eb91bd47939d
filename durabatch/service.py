"""The durabatch worker service: settings -> store (migrated) -> Temporal client -> Worker, until
SIGINT/SIGTERM.

This is the one library module that assembles the layers above the library (`workflows`,
`activities`); the entry points (`worker.py`, `durabatch worker`, `durabatch dev`) call it. Run it as
`durabatch worker` (or `python worker.py`). Scale out by starting more of them on the same
task queue; each one applies pending migrations under an advisory lock and registers durabatch's
search attributes when the namespace lacks them.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

import httpx
from temporalio.client import Client
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.worker import Worker

from activities import ActivityDeps, all_activities
from durabatch.contract import PROVIDERS
from durabatch.models import SweepWorkflowInput, sweep_workflow_id
from durabatch.providers.registry import build_provider
from durabatch.settings import Settings, load_settings
from durabatch.store import create_pool, migrate
from durabatch.store.embedded import embedded_database_url
from durabatch.store.pool import Pool
from durabatch.telemetry.interceptors import tracing_interceptors
from durabatch.telemetry.logs import configure_logging
from durabatch.telemetry.metrics import DurabatchMetrics, runtime_with_metrics
from durabatch.telemetry.traces import shutdown_tracing
from durabatch.temporal import connect, ensure_search_attributes
from workflows.account import AccountWorkflow
from workflows.batch import BatchWorkflow
from workflows.smoke import SmokeWorkflow
from workflows.sweep import AccountSweepWorkflow

__all__ = ["WORKFLOWS", "database_url", "main", "open_store", "run_worker", "start_sweeps", "worker_for"]

logger = logging.getLogger("durabatch.worker")

WORKFLOWS: Sequence[type] = (BatchWorkflow, AccountWorkflow, AccountSweepWorkflow, SmokeWorkflow)


def database_url(settings: Settings) -> str:
    """The configured PostgreSQL, or the embedded one under the data dir when none is set."""
    return settings.database_url or embedded_database_url(settings.data_dir)


@asynccontextmanager
async def open_store(url: str) -> AsyncIterator[Pool]:
    """A pool on a migrated database."""
    pool = await create_pool(url)
    try:
        async with pool.acquire() as conn:
            applied = await migrate(conn)
        if applied:
            logger.info("applied migrations: %s", ", ".join(applied))
        yield pool
    finally:
        await pool.close()


def worker_for(client: Client, settings: Settings, deps: ActivityDeps, **kwargs: Any) -> Worker:
    return Worker(
        client,
        task_queue=settings.task_queue,
        workflows=list(WORKFLOWS),
        activities=all_activities(deps),
        graceful_shutdown_timeout=timedelta(seconds=30),
        sticky_queue_schedule_to_start_timeout=timedelta(seconds=settings.sticky_timeout_seconds),
        max_concurrent_activities=kwargs.pop("max_concurrent_activities", 50),
        max_cached_workflows=kwargs.pop("max_cached_workflows", settings.max_cached_workflows),
        **kwargs,
    )


async def start_sweeps(client: Client, settings: Settings) -> list[str]:
    """Start the account sweep of every provider (DURABATCH_SWEEP_SECONDS > 0); the ids started or
    found. A sweep that is already running (another worker started it) is kept and told this
    worker's cadence, so the setting of the latest worker to start wins."""
    if settings.sweep_seconds <= 0:
        return []
    started = []
    for provider in sorted(PROVIDERS):
        handle = await client.start_workflow(
            AccountSweepWorkflow.run,
            SweepWorkflowInput(provider=provider, sweep_seconds=settings.sweep_seconds),
            id=sweep_workflow_id(provider),
            task_queue=settings.task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        )
        await handle.signal(AccountSweepWorkflow.configure, settings.sweep_seconds)
        started.append(handle.id)
    return started


async def run_worker(settings: Settings, stop: asyncio.Event | None = None) -> None:
    """Run until `stop` is set (or SIGINT/SIGTERM when no event is given)."""
    stop = stop or _signal_event()
    runtime = runtime_with_metrics(settings.metrics_address)
    client = await connect(settings, interceptors=tracing_interceptors(settings), runtime=runtime)
    added = await ensure_search_attributes(client)
    if added:
        logger.info("registered search attributes: %s", ", ".join(added))
    async with (
        open_store(database_url(settings)) as pool,
        httpx.AsyncClient(timeout=httpx.Timeout(60.0, connect=10.0)) as http,
    ):
        deps = ActivityDeps(
            pool=pool,
            settings=settings,
            http=http,
            provider_factory=build_provider,
            metrics=DurabatchMetrics.from_runtime(runtime),
        )
        worker = worker_for(client, settings, deps)
        sweeps = await start_sweeps(client, settings)
        if sweeps:
            logger.info("account sweeps every %g s: %s", settings.sweep_seconds, ", ".join(sweeps))
        logger.info(
            "worker polling task queue %s on %s (namespace %s)",
            settings.task_queue,
            settings.temporal_address,
            settings.temporal_namespace,
        )
        try:
            async with worker:
                await stop.wait()
        finally:
            # Export the spans still buffered before the process goes away.
            shutdown_tracing()
        logger.info("worker stopped")


def _signal_event() -> asyncio.Event:
    event = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, event.set)
    return event


def main() -> None:
    settings = load_settings()
    configure_logging(settings.log_level)
    asyncio.run(run_worker(settings))

"""Orchestration cost: what polling batches cost the Temporal server and the worker.

Starts a real stack as separate processes (the Temporal dev server on SQLite with WAL, embedded
PostgreSQL, the emulator, one `durabatch worker`), then starts N batches whose provider batches never
finish (the emulator validates them for a day), each polling every `--interval` seconds. Once every
batch has been submitted it measures, over a window:

* polls per second achieved, beside the schedule's demand (N / interval): the ratio says whether one
  worker and the server keep up;
* CPU of the Temporal server and of the worker per poll (ms), and their share of the machine;
* RSS of both processes;
* history events per poll, and from it the events one batch writes over the default 25-hour schedule.

Figures only; asserts nothing. Writes JSON under bench/results/.

    .venv/bin/python bench/bench_orchestration.py [--batches 200 1000] [--interval 10] [--window 60]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import asyncpg
from temporalio.client import Client, WorkflowHandle
from temporalio.service import RPCError

for _path in (Path(__file__).resolve().parent.parent, Path(__file__).resolve().parent):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

from chaos_stack import EmbeddedPostgres, Emulator, TemporalServer, WorkerPool, openai_worker_env  # noqa: E402

from durabatch.contract import DEFAULT_MAX_AGE_SECONDS, DEFAULT_POLL_SCHEDULE  # noqa: E402
from durabatch.converter import DATA_CONVERTER  # noqa: E402
from durabatch.models import BatchInput, StatusQuery, workflow_id_for  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU of one process, all its threads (the dev server and the worker are one each)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS  # utime, stime


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def polls_over_25_hours(schedule: tuple[float, ...], horizon: float = DEFAULT_MAX_AGE_SECONDS) -> int:
    """Polls the schedule makes before max age, the last delay repeating (jitter averages out)."""
    elapsed, polls, i = 0.0, 0, 0
    while True:
        delay = schedule[min(i, len(schedule) - 1)]
        if elapsed + delay > horizon:
            return polls
        elapsed += delay
        polls += 1
        i += 1


async def poll_counts(handles: list[WorkflowHandle[Any, Any]]) -> int:
    sem = asyncio.Semaphore(64)

    async def one(handle: WorkflowHandle[Any, Any]) -> int:
        async with sem:
            for attempt in range(5):
                try:
                    status: StatusQuery = await handle.query("status", result_type=StatusQuery)
                    return status.poll_count
                except RPCError:  # a worker busy with a burst answers queries late: ask again
                    await asyncio.sleep(1 + attempt)
            raise RuntimeError(f"{handle.id} answered no status query in 5 tries")

    return sum(await asyncio.gather(*(one(h) for h in handles)))


async def submitted(handles: list[WorkflowHandle[Any, Any]]) -> int:
    sem = asyncio.Semaphore(64)

    async def one(handle: WorkflowHandle[Any, Any]) -> bool:
        async with sem:
            try:
                status = await handle.query("status", result_type=StatusQuery)
            except RPCError:  # busy: counted as not yet, asked again on the next round
                return False
            return status.status in ("submitted", "in_progress")

    return sum(await asyncio.gather(*(one(h) for h in handles)))


async def measure(
    client: Client,
    task_queue: str,
    n: int,
    interval: float,
    window: float,
    server: int,
    worker: int,
    burst: int = 0,
    database_url: str = "",
) -> dict[str, Any]:
    run = uuid.uuid4().hex[:6]
    handles: list[WorkflowHandle[Any, Any]] = []
    started = time.monotonic()
    sem = asyncio.Semaphore(32)

    async def start(i: int) -> WorkflowHandle[Any, Any]:
        batch_id = f"orch-{run}-{i}"
        inp = BatchInput(
            batch_id=batch_id,
            provider="openai",
            endpoint="/v1/chat/completions",
            model="gpt-4o-mini",
            requests=[
                {
                    "custom_id": "r0",
                    "method": "POST",
                    "url": "/v1/chat/completions",
                    "body": {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]},
                }
            ],
            poll_schedule_seconds=[interval],
        )
        async with sem:
            return await client.start_workflow(
                "BatchWorkflow", inp, id=workflow_id_for(batch_id), task_queue=task_queue
            )

    handles = list(await asyncio.gather(*(start(i) for i in range(n))))
    while (ready := await submitted(handles)) < n:
        if time.monotonic() - started > 600:
            raise RuntimeError(f"only {ready} of {n} batches submitted after 10 minutes")
        await asyncio.sleep(2)
    submit_seconds = time.monotonic() - started
    # let the first polls spread out over one interval before measuring
    await asyncio.sleep(interval)

    sample = handles[:5]
    events_a = [len((await h.fetch_history()).events) for h in sample]
    sample_polls_a = [await poll_counts([h]) for h in sample]
    polls_a, t_a = await poll_counts(handles), time.monotonic()
    cpu_server_a, cpu_worker_a = cpu_seconds(server), cpu_seconds(worker)
    cpu_t_a = time.monotonic()
    await asyncio.sleep(window)
    cpu_server_b, cpu_worker_b = cpu_seconds(server), cpu_seconds(worker)
    cpu_t_b = time.monotonic()
    polls_b, t_b = await poll_counts(handles), time.monotonic()

    polls = polls_b - polls_a
    polls_per_s = polls / (t_b - t_a)
    cpu_window = cpu_t_b - cpu_t_a
    polls_in_cpu_window = polls_per_s * cpu_window
    server_cpu = cpu_server_b - cpu_server_a
    worker_cpu = cpu_worker_b - cpu_worker_a

    # events the polls of the window wrote, per poll (start-up and submit events left out)
    events_b = [len((await h.fetch_history()).events) for h in sample]
    sample_polls_b = [await poll_counts([h]) for h in sample]
    events_per_poll = (sum(events_b) - sum(events_a)) / max(sum(sample_polls_b) - sum(sample_polls_a), 1)

    burst_figures: dict[str, Any] = {}
    if burst:
        # the same polling batches while `burst` more start at once: do their polls keep time?
        polls_c, t_c = await poll_counts(handles), time.monotonic()
        burst_started = time.monotonic()
        burst_handles = list(await asyncio.gather(*(start(n + i) for i in range(burst))))
        # counted in the store, not by status queries: a thousand queries every few seconds would
        # be most of what the worker does
        conn = await asyncpg.connect(database_url)
        try:
            ids = [f"orch-{run}-{n + i}" for i in range(burst)]
            while (
                ready := await conn.fetchval(
                    "SELECT count(*) FROM provider_batches WHERE batch_id = ANY($1) AND provider_batch_id IS NOT NULL",
                    ids,
                )
            ) < burst:
                if time.monotonic() - burst_started > 1200:
                    raise RuntimeError(f"only {ready} of {burst} burst batches submitted after 20 minutes")
                await asyncio.sleep(2)
        finally:
            await conn.close()
        burst_seconds = time.monotonic() - burst_started
        polls_d, t_d = await poll_counts(handles), time.monotonic()
        burst_polls_per_s = (polls_d - polls_c) / (t_d - t_c)
        burst_figures = {
            "burst_starts": burst,
            "burst_all_submitted_s": round(burst_seconds, 1),
            "burst_starts_per_s": round(burst / burst_seconds, 1),
            "polls_per_s_during_burst": round(burst_polls_per_s, 2),
            "kept_schedule_ratio_during_burst": round(burst_polls_per_s / (n / interval), 3),
        }
        handles += burst_handles

    for handle in handles:
        await handle.terminate("benchmark done")
    cores = os.cpu_count() or 1
    return {
        "batches": n,
        "interval_s": interval,
        "submit_all_s": round(submit_seconds, 1),
        "polls_per_s": round(polls_per_s, 2),
        "demand_polls_per_s": round(n / interval, 2),
        "kept_schedule_ratio": round(polls_per_s / (n / interval), 3),
        "server_ms_per_poll": round(1000 * server_cpu / max(polls_in_cpu_window, 1), 2),
        "worker_ms_per_poll": round(1000 * worker_cpu / max(polls_in_cpu_window, 1), 2),
        "server_cpu_share": round(server_cpu / cpu_window / cores, 3),
        "worker_cpu_share": round(worker_cpu / cpu_window / cores, 3),
        "server_rss_mib": round(rss_mib(server), 1),
        "worker_rss_mib": round(rss_mib(worker), 1),
        "events_per_poll": round(events_per_poll, 2),
        **burst_figures,
    }


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--batches", type=int, nargs="+", default=[200, 1000])
    parser.add_argument("--interval", type=float, default=10.0)
    parser.add_argument("--window", type=float, default=60.0)
    parser.add_argument(
        "--burst",
        type=int,
        default=0,
        help="then start this many more batches at once, measuring the polls meanwhile",
    )
    args = parser.parse_args()

    data_dir = Path(tempfile.mkdtemp(prefix="durabatch-orch-"))
    data_dir.chmod(0o755)
    postgres = EmbeddedPostgres(data_dir)
    temporal = TemporalServer(data_dir)
    # provider batches that stay `validating` for a day: every poll finds them still running
    emulator = Emulator(data_dir, validating_seconds=86400.0)
    workers: WorkerPool | None = None
    rows: list[dict[str, Any]] = []
    try:
        database_url = await asyncio.to_thread(postgres.start)
        await temporal.start()
        await emulator.start()
        task_queue = f"orch-{uuid.uuid4().hex[:6]}"
        env = openai_worker_env(temporal, database_url, task_queue, data_dir, emulator)
        workers = WorkerPool(data_dir, env)
        worker = workers.spawn()
        client = await Client.connect(temporal.address, data_converter=DATA_CONVERTER)
        assert temporal.proc is not None
        server_proc, worker_proc = temporal.proc.pid, worker.pid
        for n in args.batches:
            row = await measure(
                client,
                task_queue,
                n,
                args.interval,
                args.window,
                server_proc,
                worker_proc,
                args.burst,
                database_url,
            )
            rows.append(row)
            print(json.dumps(row), flush=True)
    finally:
        if workers is not None:
            await workers.stop_all()
        await emulator.stop()
        await temporal.stop()
        postgres.stop()

    polls_25h = polls_over_25_hours(DEFAULT_POLL_SCHEDULE)
    print()
    print(
        f"{'batches':>8} {'polls/s':>8} {'demand':>7} {'ratio':>6} {'server ms':>9} {'worker ms':>9} "
        f"{'server cpu':>10} {'worker cpu':>10} {'srv MiB':>8} {'wrk MiB':>8} {'ev/poll':>7}"
    )
    for r in rows:
        print(
            f"{r['batches']:>8} {r['polls_per_s']:>8} {r['demand_polls_per_s']:>7} {r['kept_schedule_ratio']:>6} "
            f"{r['server_ms_per_poll']:>9} {r['worker_ms_per_poll']:>9} {r['server_cpu_share']:>10.1%} "
            f"{r['worker_cpu_share']:>10.1%} {r['server_rss_mib']:>8} {r['worker_rss_mib']:>8} "
            f"{r['events_per_poll']:>7}"
        )
    for r in rows:
        if "burst_starts" in r:
            print(
                f"burst of {r['burst_starts']} starts beside {r['batches']} polling batches: all submitted in "
                f"{r['burst_all_submitted_s']} s ({r['burst_starts_per_s']}/s); polls kept "
                f"{r['kept_schedule_ratio_during_burst']:.0%} of their schedule meanwhile"
            )
    if rows:
        events = rows[0]["events_per_poll"] * polls_25h
        print(
            f"\ndefault schedule: {polls_25h} polls over 25 h, about {events:.0f} history events per batch "
            f"at {rows[0]['events_per_poll']} events per poll (continue-as-new keeps each run short)"
        )
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"orchestration-{time.strftime('%Y%m%dT%H%M%S')}.json"
    out.write_text(json.dumps({"rows": rows, "polls_over_25h": polls_25h, "cpus": os.cpu_count()}, indent=2))
    print(f"written {out}")


if __name__ == "__main__":
    asyncio.run(main())

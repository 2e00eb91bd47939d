"""Orchestration cost: what polling batches cost the Temporal server and the worker.

Starts a real stack as separate processes (the Temporal dev server on SQLite with WAL, embedded
PostgreSQL, the emulator, `--workers` `durabatch worker` processes), then starts N batches whose provider batches never
finish (the emulator validates them for a day), each polling every `--interval` seconds. Once every
batch has been submitted it measures, over a window:

* polls per second achieved, beside the schedule's demand (N / interval): the ratio says whether one
  worker and the server keep up;
* CPU of the Temporal server and of the worker per poll (ms), and their share of the machine;
* RSS of both processes;
* history events per poll, and from it the events one batch writes over the default 25-hour schedule.

Polls are counted by the emulator (its per-batch status GETs), not by querying the workflows: a
status query is a workflow task on the worker being measured. With `--burst M`, M more batches
start at once once the window is over, and the polling batches' GETs are sampled every 2 s until
all M are submitted: the share of their schedule they kept, and each batch's longest wait between
two polls.

Figures only; asserts nothing. Writes JSON under bench/results/.

    .venv/bin/python bench/bench_orchestration.py [--batches 200 1000] [--interval 10] [--window 60]
        [--burst 1000] [--workers 2]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from temporalio.client import Client, WorkflowHandle
from temporalio.common import Priority
from temporalio.service import RPCError

for _path in (Path(__file__).resolve().parent.parent, Path(__file__).resolve().parent):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

from chaos_stack import EmbeddedPostgres, Emulator, TemporalServer, WorkerPool, openai_worker_env  # noqa: E402

from durabatch.contract import DEFAULT_MAX_AGE_SECONDS, DEFAULT_POLL_SCHEDULE  # noqa: E402
from durabatch.converter import DATA_CONVERTER  # noqa: E402
from durabatch.models import BatchInput, workflow_id_for  # noqa: E402

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


def machine_ticks() -> tuple[int, int]:
    """(idle, total) jiffies of the whole machine from /proc/stat: the share other work left us."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return fields[3] + fields[4], sum(fields[:8])  # idle + iowait; user..steal


def idle_share(a: tuple[int, int], b: tuple[int, int]) -> float:
    return round((b[0] - a[0]) / max(b[1] - a[1], 1), 3)


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


async def status_reads(http: httpx.AsyncClient) -> Counter[str]:
    """Status GETs per provider batch id, as the emulator counted them: polls counted where they
    land, so that counting them costs the worker nothing (a status query is a workflow task on the
    very worker being measured, and times out on a saturated one)."""
    response = await http.get("/_emulator/stats")
    response.raise_for_status()
    return Counter(response.json()["status_reads"])


async def wait_submitted(conn: asyncpg.Connection, batch_ids: list[str], timeout: float) -> dict[str, str]:
    """Wait until every batch has its provider batch; their provider batch ids by batch id."""
    started = time.monotonic()
    while True:
        rows = await conn.fetch(
            "SELECT batch_id, provider_batch_id FROM provider_batches"
            " WHERE batch_id = ANY($1) AND provider_batch_id IS NOT NULL",
            batch_ids,
        )
        if len(rows) >= len(batch_ids):
            return {r["batch_id"]: r["provider_batch_id"] for r in rows}
        if time.monotonic() - started > timeout:
            raise RuntimeError(
                f"only {len(rows)} of {len(batch_ids)} batches submitted after {timeout:.0f} s"
            )
        await asyncio.sleep(2)


def percentile(values: list[float], q: float) -> float:
    """Nearest rank: the smallest value that at least `q` of the values do not exceed."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)] if ordered else 0.0


def batch_input(
    batch_id: str, schedule: list[float] | None, requests: int = 1, priority: int | None = None
) -> BatchInput:
    return BatchInput(
        batch_id=batch_id,
        provider="openai",
        endpoint="/v1/chat/completions",
        model="gpt-4o-mini",
        requests=[
            {
                "custom_id": f"r{i}",
                "method": "POST",
                "url": "/v1/chat/completions",
                "body": {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]},
            }
            for i in range(requests)
        ],
        poll_schedule_seconds=schedule,
        priority=priority,
    )


async def start_batches(
    client: Client,
    task_queue: str,
    ids: list[str],
    schedule: list[float] | None,
    requests: int = 1,
    priority: int | None = None,
) -> list[WorkflowHandle[Any, Any]]:
    sem = asyncio.Semaphore(32)

    async def start(batch_id: str) -> WorkflowHandle[Any, Any]:
        async with sem:
            return await client.start_workflow(
                "BatchWorkflow",
                batch_input(batch_id, schedule, requests, priority),
                id=workflow_id_for(batch_id),
                task_queue=task_queue,
                # as durabatch's client starts a batch: its workflow tasks get its priority too
                priority=Priority(priority_key=priority) if priority else Priority.default,
            )

    return list(await asyncio.gather(*(start(i) for i in ids)))


async def terminate_all(handles: list[WorkflowHandle[Any, Any]]) -> None:
    """End this row's batches so the next row measures its own only (in parallel: one by one,
    a loaded server terminates ten a second)."""
    sem = asyncio.Semaphore(32)

    async def one(handle: WorkflowHandle[Any, Any]) -> None:
        async with sem:
            with contextlib.suppress(RPCError):  # already closed
                await handle.terminate("benchmark done")

    await asyncio.gather(*(one(h) for h in handles))


async def burst_beside(
    client: Client,
    http: httpx.AsyncClient,
    conn: asyncpg.Connection,
    task_queue: str,
    polling: dict[str, str],
    run: str,
    burst: int,
    interval: float,
    priority: int | None,
) -> tuple[dict[str, Any], list[WorkflowHandle[Any, Any]]]:
    """Start `burst` batches at once beside the `polling` ones; while the burst is submitted,
    sample every polling batch's status GETs every 2 s to see whether its polls kept time."""
    pids = list(polling.values())
    last_seen = {p: time.monotonic() for p in pids}
    previous = await status_reads(http)
    reads_before = {p: previous[p] for p in pids}
    worst_gap = dict.fromkeys(pids, 0.0)
    started = time.monotonic()
    ids = [f"orch-{run}-b{i}" for i in range(burst)]
    starting = asyncio.create_task(start_batches(client, task_queue, ids, [interval], priority=priority))
    waiting = asyncio.create_task(wait_submitted(conn, ids, 1500))
    while not waiting.done():
        await asyncio.sleep(2)
        now, reads = time.monotonic(), await status_reads(http)
        for p in pids:
            if reads[p] > previous[p]:
                worst_gap[p] = max(worst_gap[p], now - last_seen[p])
                last_seen[p] = now
        previous = reads
    await waiting
    handles = await starting
    elapsed = time.monotonic() - started
    end = time.monotonic()
    for p in pids:  # a batch that has not polled since its last poll is late by that much now
        worst_gap[p] = max(worst_gap[p], end - last_seen[p])
    polls = sum(previous[p] - reads_before[p] for p in pids)
    demand = len(pids) * elapsed / interval
    gaps = list(worst_gap.values())
    return {
        "burst_starts": burst,
        "burst_priority": priority,
        "burst_all_submitted_s": round(elapsed, 1),
        "burst_starts_per_s": round(burst / elapsed, 1),
        "polls_during_burst": polls,
        "kept_schedule_ratio_during_burst": round(polls / max(demand, 1), 3),
        # the longest wait between two polls of one batch (2 s resolution), against the interval
        "worst_gap_p50_s": round(percentile(gaps, 0.5), 1),
        "worst_gap_p95_s": round(percentile(gaps, 0.95), 1),
        "worst_gap_max_s": round(max(gaps), 1),
        "batches_late_over_2x_interval": sum(g > 2 * interval for g in gaps),
    }, handles


async def measure(
    client: Client,
    http: httpx.AsyncClient,
    task_queue: str,
    n: int,
    interval: float,
    window: float,
    server: int,
    workers: list[int],
    burst: int,
    database_url: str,
    burst_priority: int | None = None,
) -> dict[str, Any]:
    run = uuid.uuid4().hex[:6]
    started = time.monotonic()
    ids = [f"orch-{run}-{i}" for i in range(n)]
    handles = await start_batches(client, task_queue, ids, [interval])
    conn = await asyncpg.connect(database_url)
    try:
        polling = await wait_submitted(conn, ids, 900)
        submit_seconds = time.monotonic() - started
        # let the first polls spread out over one interval before measuring
        await asyncio.sleep(interval)
        pids = list(polling.values())

        sample = handles[:5]
        events_a = [len((await h.fetch_history()).events) for h in sample]
        reads_a, t_a = await status_reads(http), time.monotonic()
        cpu_server_a, cpu_worker_a = cpu_seconds(server), sum(cpu_seconds(w) for w in workers)
        machine_a = machine_ticks()
        await asyncio.sleep(window)
        cpu_server_b, cpu_worker_b = cpu_seconds(server), sum(cpu_seconds(w) for w in workers)
        machine_b = machine_ticks()
        reads_b, t_b = await status_reads(http), time.monotonic()
        events_b = [len((await h.fetch_history()).events) for h in sample]

        polls = sum(reads_b[p] - reads_a[p] for p in pids)
        elapsed = t_b - t_a
        polls_per_s = polls / elapsed
        server_cpu = cpu_server_b - cpu_server_a
        worker_cpu = cpu_worker_b - cpu_worker_a
        sample_polls = sum(reads_b[polling[i]] - reads_a[polling[i]] for i in ids[:5])
        events_per_poll = (sum(events_b) - sum(events_a)) / max(sample_polls, 1)

        burst_figures: dict[str, Any] = {}
        if burst:
            burst_figures, burst_handles = await burst_beside(
                client, http, conn, task_queue, polling, run, burst, interval, burst_priority
            )
            handles += burst_handles
    finally:
        await conn.close()

    await terminate_all(handles)
    cores = os.cpu_count() or 1
    return {
        "batches": n,
        "workers": len(workers),
        "interval_s": interval,
        "submit_all_s": round(submit_seconds, 1),
        "polls_per_s": round(polls_per_s, 2),
        "demand_polls_per_s": round(n / interval, 2),
        "kept_schedule_ratio": round(polls_per_s / (n / interval), 3),
        "server_ms_per_poll": round(1000 * server_cpu / max(polls, 1), 2),
        "worker_ms_per_poll": round(1000 * worker_cpu / max(polls, 1), 2),
        "server_cpu_share": round(server_cpu / elapsed / cores, 3),
        "worker_cpu_share": round(worker_cpu / elapsed / cores, 3),
        "server_rss_mib": round(rss_mib(server), 1),
        "worker_rss_mib": round(sum(rss_mib(w) for w in workers), 1),
        "events_per_poll": round(events_per_poll, 2),
        "machine_idle_share": idle_share(machine_a, machine_b),
        "load_average": os.getloadavg()[0],
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
    parser.add_argument("--workers", type=int, default=1, help="`durabatch worker` processes")
    parser.add_argument("--burst-priority", type=int, default=None, help="the burst batches' priority (1-5)")
    parser.add_argument(
        "--worker-env", action="append", default=[], metavar="NAME=VALUE", help="extra worker setting"
    )
    args = parser.parse_args()
    worker_env = dict(item.split("=", 1) for item in args.worker_env)

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
        env = {**openai_worker_env(temporal, database_url, task_queue, data_dir, emulator), **worker_env}
        workers = WorkerPool(data_dir, env)
        worker_pids = [workers.spawn().pid for _ in range(args.workers)]
        client = await Client.connect(temporal.address, data_converter=DATA_CONVERTER)
        http = httpx.AsyncClient(base_url=emulator.url, timeout=60)
        assert temporal.proc is not None
        server_proc = temporal.proc.pid
        for n in args.batches:
            row = await measure(
                client,
                http,
                task_queue,
                n,
                args.interval,
                args.window,
                server_proc,
                worker_pids,
                args.burst,
                database_url,
                args.burst_priority,
            )
            row["worker_env"] = worker_env
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
                f"{r['burst_all_submitted_s']} s ({r['burst_starts_per_s']}/s) by {r['workers']} worker "
                f"process(es); polls kept {r['kept_schedule_ratio_during_burst']:.0%} of their schedule "
                f"meanwhile; longest wait between two polls of a batch p50 {r['worst_gap_p50_s']} s, "
                f"p95 {r['worst_gap_p95_s']} s, max {r['worst_gap_max_s']} s (interval {r['interval_s']:g} s); "
                f"{r['batches_late_over_2x_interval']} batches waited over 2 intervals"
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

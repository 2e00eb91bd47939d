"""A fleet of live batches on one worker, with provider webhooks on (issue 15's fleet target).

Runs the Temporal dev server, embedded PostgreSQL, the emulator (sending signed batch-ended
webhooks), `durabatch hooks` (receiving them) and `--workers` `durabatch worker` processes, each a
process of its own. Starts N small batches (`--requests` each) on the default poll schedule whose
provider batches never end by themselves, and once every one is submitted:

1. **Fleet cost**: over `--window` seconds, CPU of the server, the workers and the receiver as a
   share of the machine (and the machine's idle share beside it: the machine is shared), their RSS,
   and the polls made (counted by the emulator). Right after submission every batch is early in the
   schedule (30, 60, 120, 300 s delays), so this is above the steady state (a poll every 900 s);
   the steady-state share is estimated from the window's CPU per poll at N / 900 polls a second.
2. **Push**: `--sample` batches are made to end at the provider (emulator admin API) at once; for
   each, provider end -> the ingest activity started (from its history), p50/p95.
3. **Push off**: the emulator drops every webhook, another sample ends, and the same latency is
   taken, the batches' own safety polls finding them (bounded by `--safety-wait`). Each latency is
   also given as a share of that batch's poll delay at the time (the target: under one interval).

Figures only; asserts nothing. Writes JSON under bench/results/.

    .venv/bin/python bench/bench_fleet.py [--batches 2000] [--window 60] [--sample 20]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHandle, WorkflowHistory
from temporalio.worker import Replayer

for _path in (Path(__file__).resolve().parent.parent, Path(__file__).resolve().parent):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

from bench_orchestration import (  # noqa: E402
    cpu_seconds,
    idle_share,
    machine_ticks,
    percentile,
    rss_mib,
    start_batches,
    status_reads,
    wait_submitted,
)
from chaos_stack import (  # noqa: E402
    API_KEY,
    BIN_DIR,
    EmbeddedPostgres,
    Emulator,
    TemporalServer,
    WorkerPool,
    _stop_process,
    free_port,
)

from durabatch.contract import DEFAULT_POLL_SCHEDULE  # noqa: E402
from durabatch.converter import DATA_CONVERTER  # noqa: E402
from durabatch.models import workflow_id_for  # noqa: E402
from durabatch.service import WORKFLOWS  # noqa: E402
from durabatch.store import migrate  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
#: a Standard Webhooks secret (whsec_ + base64), made up for this run's emulator and receiver
WEBHOOK_SECRET = "whsec_" + base64.b64encode(b"durabatch-fleet-bench-not-secret").decode()
INGEST_ACTIVITY = "ingest_results"


class Hooks:
    """`durabatch hooks` as a subprocess on a free port."""

    def __init__(self, data_dir: Path, env: dict[str, str]) -> None:
        self.data_dir, self.env = data_dir, env
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        with (self.data_dir / "hooks.log").open("ab") as log:
            self.proc = subprocess.Popen(
                [str(BIN_DIR / "durabatch"), "hooks", "--host", "127.0.0.1", "--port", str(self.port)],
                env={**os.environ, **self.env},
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        async with httpx.AsyncClient() as http:
            for _ in range(300):
                if self.proc.poll() is not None:
                    raise RuntimeError(f"durabatch hooks exited with {self.proc.returncode}")
                try:
                    await http.get(self.url + "/hooks/openai")  # 405: it is up
                    return
                except httpx.TransportError:
                    await asyncio.sleep(0.2)
        raise RuntimeError("durabatch hooks did not start")

    async def stop(self) -> None:
        if self.proc is not None:
            await asyncio.to_thread(_stop_process, self.proc)


def delay_at(elapsed: float) -> float:
    """The default schedule's poll delay a batch is in, `elapsed` seconds after it was submitted."""
    total = 0.0
    for delay in DEFAULT_POLL_SCHEDULE:
        total += delay
        if elapsed < total:
            return delay
    return DEFAULT_POLL_SCHEDULE[-1]


async def ingest_started_at(handle: WorkflowHandle[Any, Any]) -> float | None:
    """Wall-clock time the first ingest activity of the batch's current run started."""
    scheduled: set[int] = set()
    async for event in handle.fetch_history_events():
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            if event.activity_task_scheduled_event_attributes.activity_type.name == INGEST_ACTIVITY:
                scheduled.add(event.event_id)
        elif event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED:
            if event.activity_task_started_event_attributes.scheduled_event_id in scheduled:
                return event.event_time.ToDatetime().timestamp() + _utc_offset()
    return None


def _utc_offset() -> float:
    # protobuf's ToDatetime() is naive UTC; .timestamp() reads it as local time
    return datetime.now().astimezone().utcoffset().total_seconds()  # type: ignore[union-attr]


async def end_and_time(
    client: Client,
    http: httpx.AsyncClient,
    conn: asyncpg.Connection,
    chosen: dict[str, str],
    submitted_at: dict[str, float],
    wait: float,
) -> dict[str, Any]:
    """End the `chosen` provider batches at once; provider end -> ingest started for each."""
    ended_at: dict[str, float] = {}
    for batch_id, pid in chosen.items():
        response = await http.post(f"/_emulator/batches/{pid}/advance", json={"to": "completed"})
        response.raise_for_status()
        ended_at[batch_id] = time.time()
    deadline = time.monotonic() + wait
    seen: set[str] = set()
    while len(seen) < len(chosen) and time.monotonic() < deadline:
        rows = await conn.fetch(
            "SELECT batch_id FROM provider_batches WHERE batch_id = ANY($1) AND ended_at IS NOT NULL",
            list(chosen),
        )
        seen = {r["batch_id"] for r in rows}
        await asyncio.sleep(0.5)
    await asyncio.sleep(2)  # the ingest activity starts right after the poll that saw the end
    latencies: list[float] = []
    shares: list[float] = []
    for batch_id in chosen:
        started = await ingest_started_at(client.get_workflow_handle(workflow_id_for(batch_id)))
        if started is None:
            continue
        latencies.append(started - ended_at[batch_id])
        shares.append(latencies[-1] / delay_at(ended_at[batch_id] - submitted_at[batch_id]))
    return {
        "ended": len(chosen),
        "ingest_started": len(latencies),
        "latency_p50_s": round(percentile(latencies, 0.5), 2),
        "latency_p95_s": round(percentile(latencies, 0.95), 2),
        "latency_max_s": round(max(latencies, default=0.0), 2),
        "share_of_poll_delay_max": round(max(shares, default=0.0), 3),
    }


async def replay_ms(history: WorkflowHistory, times: int = 5) -> float:
    replayer = Replayer(workflows=list(WORKFLOWS), data_converter=DATA_CONVERTER)
    await replayer.replay_workflow(history)  # warm: imports, the sandbox's first module loads
    started = time.process_time()
    for _ in range(times):
        await replayer.replay_workflow(history)
    return 1000 * (time.process_time() - started) / times


async def cache_miss_cost(
    client: Client, http: httpx.AsyncClient, conn: asyncpg.Connection, task_queue: str, run: str, polls: int
) -> dict[str, Any]:
    """What waking a batch costs a worker that no longer holds it in its cache: a replay of the
    run's history so far. One batch polls `polls` times quickly (the default schedule's 25 hours
    make 103 polls); its history is replayed after 10 polls and at the end."""
    batch_id = f"fleet-{run}-replay"
    handle = (await start_batches(client, task_queue, [batch_id], [0.2]))[0]
    pid = (await wait_submitted(conn, [batch_id], 300))[batch_id]
    figures: dict[str, Any] = {}
    for target in (10, polls):
        while (await status_reads(http))[pid] < target:
            await asyncio.sleep(0.5)
        history = await handle.fetch_history()
        figures[f"events_after_{target}_polls"] = len(history.events)
        figures[f"replay_ms_after_{target}_polls"] = round(await replay_ms(history), 1)
    await handle.terminate("benchmark done")
    return figures


async def run_fleet(args: argparse.Namespace) -> dict[str, Any]:
    data_dir = Path(tempfile.mkdtemp(prefix="durabatch-fleet-"))
    data_dir.chmod(0o755)
    postgres = EmbeddedPostgres(data_dir)
    temporal = TemporalServer(data_dir)
    workers: WorkerPool | None = None
    emulator: Emulator | None = None
    hooks: Hooks | None = None
    try:
        database_url = await asyncio.to_thread(postgres.start)
        conn = await asyncpg.connect(database_url)
        await migrate(conn)  # before the receiver and the workers, which read the tables
        await temporal.start()
        task_queue = f"fleet-{uuid.uuid4().hex[:6]}"
        env = {
            "DURABATCH_TEMPORAL_ADDRESS": temporal.address,
            "DURABATCH_DATABASE_URL": database_url,
            "DURABATCH_TASK_QUEUE": task_queue,
            "DURABATCH_DATA_DIR": str(data_dir),
            "DURABATCH_LOG_LEVEL": "WARNING",
            **args.worker_env,
        }
        hooks = Hooks(data_dir, {**env, "DURABATCH_OPENAI_WEBHOOK_SECRET": WEBHOOK_SECRET})
        await hooks.start()
        # provider batches that stay `validating` for a day: they end only when the bench says so
        webhooks = ("--webhook-url", f"{hooks.url}/hooks/{{provider}}", "--webhook-secret", WEBHOOK_SECRET)
        emulator = Emulator(data_dir, webhooks, validating_seconds=86400.0)
        await emulator.start()
        env |= {"DURABATCH_OPENAI_BASE_URL": f"{emulator.url}/v1", "OPENAI_API_KEY": API_KEY}
        workers = WorkerPool(data_dir, env)
        worker_pids = [workers.spawn().pid for _ in range(args.workers)]
        client = await Client.connect(temporal.address, data_converter=DATA_CONVERTER)
        http = httpx.AsyncClient(base_url=emulator.url, timeout=120)
        assert temporal.proc is not None and hooks.proc is not None
        pids = {"server": temporal.proc.pid, "hooks": hooks.proc.pid}
        try:
            return await measure(args, client, http, conn, task_queue, pids, worker_pids)
        finally:
            await conn.close()
            await http.aclose()
    finally:
        if workers is not None:
            await workers.stop_all()
        if emulator is not None:
            await emulator.stop()
        if hooks is not None:
            await hooks.stop()
        await temporal.stop()
        postgres.stop()


async def measure(
    args: argparse.Namespace,
    client: Client,
    http: httpx.AsyncClient,
    conn: asyncpg.Connection,
    task_queue: str,
    pids: dict[str, int],
    worker_pids: list[int],
) -> dict[str, Any]:
    n = args.batches
    run = uuid.uuid4().hex[:6]
    ids = [f"fleet-{run}-{i}" for i in range(n)]
    started = time.monotonic()
    await start_batches(client, task_queue, ids, None, args.requests)
    started_s = time.monotonic() - started
    provider_ids = await wait_submitted(conn, ids, args.submit_timeout)
    submit_s = time.monotonic() - started
    rows = await conn.fetch(
        "SELECT batch_id, extract(epoch FROM submitted_at)::float8 AS at FROM provider_batches WHERE batch_id = ANY($1)",
        ids,
    )
    submitted_at = {r["batch_id"]: r["at"] for r in rows}
    print(f"{n} batches started in {started_s:.0f} s, all submitted in {submit_s:.0f} s", flush=True)

    def cpu() -> dict[str, float]:
        return {
            "server": cpu_seconds(pids["server"]),
            "workers": sum(cpu_seconds(w) for w in worker_pids),
            "hooks": cpu_seconds(pids["hooks"]),
        }

    cores = os.cpu_count() or 1
    reads_a, cpu_a, machine_a, t_a = await status_reads(http), cpu(), machine_ticks(), time.monotonic()
    await asyncio.sleep(args.window)
    reads_b, cpu_b, machine_b, t_b = await status_reads(http), cpu(), machine_ticks(), time.monotonic()
    elapsed = t_b - t_a
    polls = sum(reads_b.values()) - sum(reads_a.values())
    share = {k: (cpu_b[k] - cpu_a[k]) / elapsed / cores for k in cpu_a}
    total_share = sum(share.values())
    ms_per_poll = (
        1000 * (cpu_b["server"] + cpu_b["workers"] - cpu_a["server"] - cpu_a["workers"]) / max(polls, 1)
    )
    steady_polls_per_s = n / DEFAULT_POLL_SCHEDULE[-1]
    fleet = {
        "window_s": round(elapsed, 1),
        "polls_per_s": round(polls / elapsed, 2),
        "cpu_share": {k: round(v, 3) for k, v in share.items()},
        "cpu_share_total": round(total_share, 3),
        "orchestration_ms_per_poll": round(ms_per_poll, 1),
        "steady_polls_per_s": round(steady_polls_per_s, 2),
        # the window's CPU per poll at the steady state's poll rate: timers and cache upkeep
        # between polls are in the per-poll figure, so this leans high
        "steady_cpu_share_estimate": round(ms_per_poll / 1000 * steady_polls_per_s / cores, 3),
        "machine_idle_share": idle_share(machine_a, machine_b),
        "rss_mib": {
            "server": round(rss_mib(pids["server"]), 1),
            "workers": round(sum(rss_mib(w) for w in worker_pids), 1),
            "hooks": round(rss_mib(pids["hooks"]), 1),
        },
    }
    print(json.dumps(fleet), flush=True)

    sample = args.sample
    push = await end_and_time(
        client, http, conn, {b: provider_ids[b] for b in ids[:sample]}, submitted_at, args.push_wait
    )
    print("push:", json.dumps(push), flush=True)
    (await http.patch("/_emulator/config", json={"webhook_drop": True})).raise_for_status()
    no_push = await end_and_time(
        client,
        http,
        conn,
        {b: provider_ids[b] for b in ids[sample : 2 * sample]},
        submitted_at,
        args.safety_wait,
    )
    print("push off:", json.dumps(no_push), flush=True)
    cache_miss = await cache_miss_cost(client, http, conn, task_queue, run, args.replay_polls)
    print("cache miss:", json.dumps(cache_miss), flush=True)
    return {
        "batches": n,
        "requests_per_batch": args.requests,
        "workers": len(worker_pids),
        "worker_env": args.worker_env,
        "start_all_s": round(started_s, 1),
        "submit_all_s": round(submit_s, 1),
        "fleet": fleet,
        "push": push,
        "push_off": no_push,
        "cache_miss": cache_miss,
        "load_average": os.getloadavg(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--batches", type=int, default=2000)
    parser.add_argument("--requests", type=int, default=2, help="requests per batch")
    parser.add_argument("--window", type=float, default=60.0)
    parser.add_argument("--sample", type=int, default=20, help="batches ended at the provider, per mode")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--push-wait", type=float, default=120.0)
    parser.add_argument("--safety-wait", type=float, default=960.0, help="longest wait for a safety poll")
    parser.add_argument("--replay-polls", type=int, default=103, help="polls before the cache-miss replay")
    parser.add_argument("--submit-timeout", type=float, default=1800.0)
    parser.add_argument(
        "--worker-env", action="append", default=[], metavar="NAME=VALUE", help="extra worker setting"
    )
    args = parser.parse_args()
    args.worker_env = dict(item.split("=", 1) for item in args.worker_env)
    result = asyncio.run(run_fleet(args))
    f, push, off = result["fleet"], result["push"], result["push_off"]
    print()
    print(
        f"{'batches':>8} {'submit s':>8} {'polls/s':>8} {'server':>7} {'workers':>8} {'hooks':>6} {'total':>6} "
        f"{'idle':>6} {'ms/poll':>8} {'steady':>7} {'push p50/p95 s':>15} {'no push p50/p95 s':>18}"
    )
    print(
        f"{result['batches']:>8} {result['submit_all_s']:>8} {f['polls_per_s']:>8} "
        f"{f['cpu_share']['server']:>7.1%} {f['cpu_share']['workers']:>8.1%} {f['cpu_share']['hooks']:>6.1%} "
        f"{f['cpu_share_total']:>6.1%} {f['machine_idle_share']:>6.1%} {f['orchestration_ms_per_poll']:>8} "
        f"{f['steady_cpu_share_estimate']:>7.1%} {push['latency_p50_s']:>7}/{push['latency_p95_s']:<7} "
        f"{off['latency_p50_s']:>9}/{off['latency_p95_s']:<8}"
    )
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"fleet-{time.strftime('%Y%m%dT%H%M%S')}.json"
    out.write_text(json.dumps({**result, "cpus": os.cpu_count()}, indent=2))
    print(f"written {out}")


if __name__ == "__main__":
    main()

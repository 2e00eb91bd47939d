"""Admission under OpenAI's enqueued-token limit: many batches that together exceed the account's
budget several times over.

Starts a real stack as separate processes (the Temporal dev server, embedded PostgreSQL, the
emulator with `--openai-enqueued-token-limit L`, one `durabatch worker`), then starts N batches at
once whose prompt tokens (by the emulator's own count) add up to several times L, and waits for
every one to end. Two runs, alternated A B A B, each on a fresh task queue and a reset emulator:

* **admission**: the worker has `DURABATCH_OPENAI_QUEUE_TOKENS={"gpt-4o-mini": L}`, so a shard waits
  for room in the account workflow before it is sent;
* **no admission** (the reference): the setting off, so every batch is sent at once and the
  provider refuses what does not fit (`token_limit_exceeded`); durabatch resubmits those later, up
  to its quota-retry limit.

For each it prints batches completed, the provider's refusals for quota (the emulator's count),
the emulator's high-water mark of enqueued tokens beside L (the emulator enforces L, so it can
never pass it: the refusals are the budget being hit), batches that needed a quota resubmit, and
the wall time.

    .venv/bin/python bench/bench_admission.py [--batches 200] [--limit 40000] [--rounds 2]

Figures only; asserts nothing. Writes JSON under bench/results/.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from temporalio.client import Client, WorkflowHandle

for _path in (Path(__file__).resolve().parent.parent, Path(__file__).resolve().parent):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

from chaos_stack import EmbeddedPostgres, Emulator, TemporalServer, WorkerPool, openai_worker_env  # noqa: E402

from durabatch.converter import DATA_CONVERTER  # noqa: E402
from durabatch.emulator.content import expected_usage  # noqa: E402
from durabatch.estimate import BYTES_PER_TOKEN  # noqa: E402
from durabatch.models import BatchInput, BatchSummary, workflow_id_for  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
MODEL = "gpt-4o-mini"
ENDPOINT = "/v1/chat/completions"


def batch_requests(run: str, batch: int, n: int, words: int) -> list[dict[str, Any]]:
    # three-letter words: 4 bytes each, so durabatch's estimate (a token per 4 bytes of the line)
    # and the emulator's count (a token per word) nearly agree, as they would on English prose
    text = " ".join(f"w{(batch + i) % 100:02d}" for i in range(words))
    return [
        {
            "custom_id": f"{run}-{batch}-{i}",
            "method": "POST",
            "url": ENDPOINT,
            "body": {"model": MODEL, "messages": [{"role": "user", "content": text}]},
        }
        for i in range(n)
    ]


def emulator_tokens(requests: list[dict[str, Any]]) -> int:
    """The prompt tokens the emulator counts against its limit for these requests."""
    return sum(expected_usage("openai", ENDPOINT, r["body"]).input_tokens for r in requests)


async def results_while_alive(
    handles: list[WorkflowHandle[Any, BatchSummary]], workers: WorkerPool, timeout: float
) -> list[BatchSummary | BaseException]:
    """Every batch's summary, or its failure (a batch the provider kept refusing past durabatch's
    quota retries fails); a worker that dies (a bad setting, a crash) ends the wait at once."""
    results = asyncio.ensure_future(asyncio.gather(*(h.result() for h in handles), return_exceptions=True))
    deadline = time.monotonic() + timeout
    while not results.done():
        await asyncio.wait({results}, timeout=2)
        dead = workers.dead_unexpectedly()
        if dead or time.monotonic() > deadline:
            results.cancel()
            log = workers.data_dir / f"worker-{workers.spawned}.log"
            raise RuntimeError(f"worker died or run timed out; {log}:\n{log.read_text()[-2000:]}")
    return results.result()


async def run_once(
    client: Client,
    http: httpx.AsyncClient,
    stack: tuple[TemporalServer, str, Path, Emulator],
    label: str,
    args: argparse.Namespace,
) -> dict[str, Any]:
    temporal, database_url, data_dir, emulator = stack
    (await http.post(f"{emulator.url}/_emulator/reset")).raise_for_status()
    run = uuid.uuid4().hex[:6]
    task_queue = f"adm-{label.replace(' ', '-')}-{run}"
    env = openai_worker_env(temporal, database_url, task_queue, data_dir, emulator)
    if label == "admission":
        env["DURABATCH_OPENAI_QUEUE_TOKENS"] = json.dumps({MODEL: args.limit})
    workers = WorkerPool(data_dir, env)
    workers.spawn()
    try:
        inputs = [
            BatchInput(
                batch_id=f"adm-{run}-{i}",
                provider="openai",
                endpoint=ENDPOINT,
                model=MODEL,
                requests=batch_requests(run, i, args.requests, args.words),
                poll_schedule_seconds=[args.poll],
            )
            for i in range(args.batches)
        ]
        total_tokens = sum(emulator_tokens(inp.requests or []) for inp in inputs)
        started = time.monotonic()
        sem = asyncio.Semaphore(32)

        async def start(inp: BatchInput) -> WorkflowHandle[Any, BatchSummary]:
            async with sem:
                return await client.start_workflow(
                    "BatchWorkflow",
                    inp,
                    id=workflow_id_for(inp.batch_id or ""),
                    task_queue=task_queue,
                    result_type=BatchSummary,
                )

        handles = await asyncio.gather(*(start(inp) for inp in inputs))
        outcomes = await results_while_alive(handles, workers, args.timeout)
        wall = time.monotonic() - started
    finally:
        await workers.stop_all()
    summaries = [o for o in outcomes if isinstance(o, BatchSummary)]
    conn = await asyncpg.connect(database_url)
    try:  # what admission counts a batch as: a token per 4 bytes of its staged lines
        staged_bytes = await conn.fetchval(
            "SELECT sum(byte_size) FROM requests WHERE batch_id LIKE $1", f"adm-{run}-%"
        )
    finally:
        await conn.close()
    stats = (await http.get(f"{emulator.url}/_emulator/stats")).json()
    high_water = int(stats["enqueued_tokens_high_water"].get(MODEL, 0))
    return {
        "run": label,
        "batches": args.batches,
        "completed": sum(s.status == "completed" for s in summaries),
        "failed": len(outcomes) - len(summaries),
        "requests_succeeded": sum(s.counts.succeeded for s in summaries),
        "provider_refusals": int(stats["token_limit_refusals"].get(MODEL, 0)),
        # a failed batch here is one refused on every try: resubmitted too
        "batches_resubmitted": sum(len(s.provider_batch_ids) > 1 for s in summaries)
        + len(outcomes)
        - len(summaries),
        "provider_batches": int(stats["batches_created"].get("openai", 0)),
        "limit": args.limit,
        "high_water_tokens": high_water,
        "high_water_share": round(high_water / args.limit, 3),
        "total_tokens": total_tokens,
        "total_over_limit": round(total_tokens / args.limit, 2),
        "durabatch_estimate_tokens": -(-int(staged_bytes or 0) // BYTES_PER_TOKEN),
        "wall_s": round(wall, 1),
    }


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--batches", type=int, default=200)
    parser.add_argument("--requests", type=int, default=4, help="requests per batch")
    parser.add_argument("--words", type=int, default=250, help="words per request prompt")
    parser.add_argument("--limit", type=int, default=40_000, help="enqueued prompt tokens for the model")
    parser.add_argument("--rounds", type=int, default=2, help="A B pairs")
    parser.add_argument("--poll", type=float, default=2.0, help="each batch's poll interval, seconds")
    parser.add_argument(
        "--provider-seconds", type=float, default=20.0, help="how long a batch stays at the provider (>= 6)"
    )
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds one run may take")
    args = parser.parse_args()

    data_dir = Path(tempfile.mkdtemp(prefix="durabatch-admission-"))
    data_dir.chmod(0o755)
    postgres = EmbeddedPostgres(data_dir)
    temporal = TemporalServer(data_dir)
    # a batch stays enqueued at the provider ~20 s (a real one, hours): long beside the time one
    # worker takes to submit them all, so that without admission they do meet in the queue
    emulator = Emulator(
        data_dir,
        validating_seconds=args.provider_seconds - 5.0,
        ms_per_request=1000.0,
        finalizing_seconds=1.0,
        openai_enqueued_token_limit=args.limit,
    )
    rows: list[dict[str, Any]] = []
    try:
        database_url = await asyncio.to_thread(postgres.start)
        await temporal.start()
        await emulator.start()
        client = await Client.connect(temporal.address, data_converter=DATA_CONVERTER)
        async with httpx.AsyncClient(timeout=30) as http:
            for _ in range(args.rounds):
                for label in ("admission", "no admission"):
                    row = await run_once(
                        client, http, (temporal, database_url, data_dir, emulator), label, args
                    )
                    rows.append(row)
                    print(json.dumps(row), flush=True)
    finally:
        await emulator.stop()
        await temporal.stop()
        postgres.stop()

    print(
        f"\n{args.batches} batches of {args.requests} requests, "
        f"{rows[0]['total_tokens']:,} prompt tokens in all: {rows[0]['total_over_limit']}x "
        f"the limit of {args.limit:,}"
        if rows
        else ""
    )
    print(
        f"{'run':>13} {'completed':>9} {'failed':>6} {'refusals':>8} {'resubmitted':>11} {'high water':>10} "
        f"{'of limit':>8} {'wall s':>7}"
    )
    for r in rows:
        print(
            f"{r['run']:>13} {r['completed']:>9} {r['failed']:>6} {r['provider_refusals']:>8} {r['batches_resubmitted']:>11} "
            f"{r['high_water_tokens']:>10,} {r['high_water_share']:>8.0%} {r['wall_s']:>7}"
        )
    for label in ("admission", "no admission"):
        walls = [r["wall_s"] for r in rows if r["run"] == label]
        if walls:
            print(f"{label}: mean wall {sum(walls) / len(walls):.1f} s over {len(walls)} runs")
    with_admission = [r["wall_s"] for r in rows if r["run"] == "admission"]
    without = [r["wall_s"] for r in rows if r["run"] == "no admission"]
    if with_admission and without:
        print(f"wall time ratio admission / no admission: {sum(with_admission) / sum(without):.2f}")
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"admission-{time.strftime('%Y%m%dT%H%M%S')}.json"
    out.write_text(json.dumps({"args": vars(args), "rows": rows}, indent=2))
    print(f"written {out}")


if __name__ == "__main__":
    asyncio.run(main())

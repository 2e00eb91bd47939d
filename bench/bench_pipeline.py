"""Throughput of durabatch's own data path: staging, submit upload, ingest.

Runs the real activities (in `temporalio.testing.ActivityEnvironment`, so no Temporal server is
needed) against the emulator over HTTP and a real PostgreSQL, for one batch of N requests, and
prints lines per second for each step and the process's peak RSS.

    python bench/bench_pipeline.py --requests 100000
    python bench/bench_pipeline.py --requests 20000 --database-url postgresql://postgres@127.0.0.1:5432/postgres
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import shutil
import tempfile
import time
import uuid
from pathlib import Path

import asyncpg
import httpx
from temporalio.testing import ActivityEnvironment

from activities import ActivityDeps
from activities.ingest import IngestActivities
from activities.staging import StagingActivities
from activities.submission import SubmissionActivities
from durabatch.emulator import EmulatorConfig, run_emulator
from durabatch.models import IngestInput, PollInput, ShardState, StageInput, SubmitInput
from durabatch.providers.registry import build_provider
from durabatch.settings import Settings
from durabatch.store import create_pool, migrate
from durabatch.store.embedded import embedded_database_url, stop_embedded

KEY = "bench-key"


def write_requests(path: Path, n: int) -> None:
    with path.open("w") as fh:
        for i in range(n):
            body = {
                "model": "gpt-4o-mini",
                "messages": [{"role": "user", "content": f"benchmark question {i}"}],
            }
            fh.write(json.dumps({"custom_id": f"r{i}", "body": body}) + "\n")


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def run(n: int, server_url: str) -> None:
    database = f"bench_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(server_url)
    await admin.execute(f"CREATE DATABASE {database}")
    await admin.close()
    url = (
        server_url.rsplit("/", 1)[0] + f"/{database}"
        if "?" not in server_url
        else server_url.replace("/postgres?", f"/{database}?")
    )
    work = Path(tempfile.mkdtemp(prefix="durabatch-bench-"))
    requests_file = work / "requests.jsonl"
    write_requests(requests_file, n)
    os.environ["OPENAI_API_KEY"] = KEY
    config = EmulatorConfig(
        api_keys=[KEY], validating_seconds=0.1, ms_per_request=0.001, finalizing_seconds=0.1
    )
    pool = await create_pool(url, max_size=4)
    try:
        async with pool.acquire() as conn:
            await migrate(conn)
        async with run_emulator(config) as emu, httpx.AsyncClient(timeout=120) as http:
            settings = Settings(openai_base_url=f"{emu.url}/v1", database_url=url, requests_roots=str(work))
            deps = ActivityDeps(pool=pool, settings=settings, http=http, provider_factory=build_provider)
            env = ActivityEnvironment()
            batch_id = "bench"
            print(f"batch of {n:,} requests ({requests_file.stat().st_size / 1e6:.1f} MB JSONL)")

            started = time.monotonic()
            staged = await env.run(
                StagingActivities(deps).stage_requests,
                StageInput(
                    batch_id=batch_id,
                    workflow_id=f"batch-{batch_id}",
                    provider="openai",
                    endpoint="/v1/chat/completions",
                    requests_uri=str(requests_file),
                ),
            )
            stage_s = time.monotonic() - started
            print(
                f"  stage   {n / stage_s:>10,.0f} lines/s  ({stage_s:.2f} s, {len(staged.shards)} shard(s))"
            )

            submission = SubmissionActivities(deps)
            shards: list[ShardState] = []
            started = time.monotonic()
            for plan in staged.shards:
                result = await env.run(
                    submission.submit_shard,
                    SubmitInput(
                        batch_id=batch_id,
                        workflow_id=f"batch-{batch_id}",
                        provider="openai",
                        endpoint="/v1/chat/completions",
                        model=staged.model,
                        shard=plan.shard,
                    ),
                )
                shards.append(ShardState(shard=plan.shard, provider_batch_id=result.provider_batch_id))
            submit_s = time.monotonic() - started
            print(
                f"  submit  {n / submit_s:>10,.0f} lines/s  ({submit_s:.2f} s, upload streamed from PostgreSQL)"
            )

            while True:
                polled = await env.run(
                    submission.poll_shards, PollInput(batch_id=batch_id, provider="openai", shards=shards)
                )
                if all(s.state == "completed" for s in polled.shards):
                    break
                await asyncio.sleep(0.2)

            ingest = IngestActivities(deps)
            started = time.monotonic()
            for shard in polled.shards:
                await env.run(
                    ingest.ingest_results,
                    IngestInput(batch_id=batch_id, provider="openai", model=staged.model, shard=shard),
                )
            ingest_s = time.monotonic() - started
            rows = await pool.fetchval("SELECT count(*) FROM results WHERE batch_id = $1", batch_id)
            print(f"  ingest  {n / ingest_s:>10,.0f} lines/s  ({ingest_s:.2f} s, {rows:,} result rows)")
            print(f"  peak RSS of this process (emulator included): {peak_rss_mib():,.0f} MiB")
    finally:
        await pool.close()
        shutil.rmtree(work, ignore_errors=True)
        admin = await asyncpg.connect(server_url)
        await admin.execute(f"DROP DATABASE IF EXISTS {database}")
        await admin.close()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=50_000, help="requests in the batch (default 50,000)")
    parser.add_argument("--database-url", default="", help="a PostgreSQL server URL (default: embedded)")
    args = parser.parse_args()
    if args.database_url:
        asyncio.run(run(args.requests, args.database_url))
        return
    data_dir = Path(tempfile.mkdtemp(prefix="durabatch-bench-pg-"))
    data_dir.chmod(0o755)
    try:
        asyncio.run(run(args.requests, embedded_database_url(data_dir)))
    finally:
        stop_embedded(data_dir)
        shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    main()

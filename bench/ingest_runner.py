"""One measured run of `bench_pipeline.py`, in a process of its own so its peak RSS is its alone.

Modes (each prints one JSON object: seconds, rows, peak RSS):
- ``durabatch``: the `ingest_results` activity (in `ActivityEnvironment`) from "the provider says
  completed" to every row committed in `results`;
- ``plain``: `plain_openai_ingest.py`, the official-SDK script, on the same file;
- ``copy``: the limit: the file parsed beforehand (untimed) into exactly the rows durabatch
  writes, then one `copy_records_to_table` of them (timed);
- ``download``: the limit of the network: the whole output file read and dropped.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import sys
import time
from pathlib import Path
from typing import Any

for _path in (Path(__file__).resolve().parent.parent, Path(__file__).resolve().parent):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

import httpx  # noqa: E402


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _proc_stat(pid: int) -> list[str]:
    # fields after the command name, which may hold spaces: ppid is [1], utime..cstime [11:15]
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


async def _postmaster(database_url: str) -> int:
    import asyncpg

    conn = await asyncpg.connect(database_url)
    try:
        backend: int = await conn.fetchval("SELECT pg_backend_pid()")
        return int(_proc_stat(backend)[1])
    finally:
        await conn.close()


def _server_cpu(postmaster: int) -> float:
    """CPU seconds the PostgreSQL server has used so far: the postmaster, its live processes
    (backends, WAL writer, checkpointer) and, through the postmaster's cutime, those that exited.
    On a shared machine this is the database's share of a run's work, which wall time cannot show."""
    ticks = os.sysconf("SC_CLK_TCK")
    fields = _proc_stat(postmaster)
    total = sum(int(f) for f in fields[11:15])
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            child = _proc_stat(int(entry.name))
        except (OSError, IndexError):
            continue
        if int(child[1]) == postmaster:
            total += int(child[11]) + int(child[12])
    return total / ticks


class _ServerClock:
    """The server's CPU seconds over the timed work, beside the process's own."""

    def __init__(self, database_url: str) -> None:
        self._url = database_url
        self._postmaster = 0
        self._started = 0.0
        self.seconds: float | None = None

    async def start(self) -> None:
        self._postmaster = await _postmaster(self._url)
        self._started = _server_cpu(self._postmaster)

    def stop(self) -> None:
        self.seconds = _server_cpu(self._postmaster) - self._started


async def run_durabatch(base_url: str, database_url: str, batch_id: str, provider_batch_id: str) -> int:
    from temporalio.testing import ActivityEnvironment

    from activities import ActivityDeps
    from activities.ingest import IngestActivities
    from durabatch.activity_api import IngestInput
    from durabatch.models import ProviderBatchRef, ShardState
    from durabatch.providers.registry import build_provider
    from durabatch.settings import Settings
    from durabatch.store import create_pool

    os.environ["OPENAI_API_KEY"] = "bench-key"
    pool = await create_pool(database_url, max_size=4)
    async with httpx.AsyncClient(timeout=120) as http:
        settings = Settings(openai_base_url=base_url, database_url=database_url)
        deps = ActivityDeps(pool=pool, settings=settings, http=http, provider_factory=build_provider)
        shard = ShardState(
            shard=0,
            ref=ProviderBatchRef(provider="openai", provider_batch_id=provider_batch_id),
            state="completed",
        )
        inp = IngestInput(batch_id=batch_id, provider="openai", model="gpt-4o-mini", shard=shard)
        server = _ServerClock(database_url)
        await server.start()
        started, cpu_started = time.perf_counter(), time.process_time()
        result = await ActivityEnvironment().run(IngestActivities(deps).ingest_results, inp)
        seconds = time.perf_counter() - started
        work_cpu = time.process_time() - cpu_started
        server.stop()
    await pool.close()
    _report(seconds, result.succeeded, work_cpu, server.seconds)
    return result.succeeded


async def run_copy(database_url: str, batch_id: str, path: Path) -> None:
    from durabatch.providers.openai_wire import openai_usage
    from durabatch.providers.prices import cost_of, price_of
    from durabatch.store.pool import create_pool
    from durabatch.store.results import RESULT_COLUMNS

    price = price_of("openai", "gpt-4o-mini")
    assert price is not None
    rows: list[tuple[Any, ...]] = []
    with path.open("rb") as fh:
        for raw in fh:
            text = raw.rstrip(b"\n").decode()
            record = json.loads(text)
            body = record["response"]["body"]
            tokens_in, cached, tokens_out = openai_usage(body)
            cost = cost_of(price, tokens_in, cached, tokens_out)
            rows.append(
                (
                    batch_id,
                    record["custom_id"],
                    0,
                    "succeeded",
                    200,
                    text,
                    None,
                    tokens_in,
                    tokens_out,
                    cached,
                    cost,
                )
            )
    pool = await create_pool(database_url, max_size=1)
    server = _ServerClock(database_url)
    async with pool.acquire() as conn:
        await server.start()
        started, cpu_started = time.perf_counter(), time.process_time()
        await conn.copy_records_to_table("results", records=rows, columns=list(RESULT_COLUMNS))
        seconds = time.perf_counter() - started
        work_cpu = time.process_time() - cpu_started
        server.stop()
    await pool.close()
    _report(seconds, len(rows), work_cpu, server.seconds)


async def run_plain(base_url: str, database_url: str, provider_batch_id: str, batch_id: str) -> None:
    from plain_openai_ingest import plain_ingest

    server = _ServerClock(database_url)
    await server.start()
    started, cpu_started = time.perf_counter(), time.process_time()
    rows = await plain_ingest(base_url, database_url, provider_batch_id, batch_id)
    seconds, work_cpu = time.perf_counter() - started, time.process_time() - cpu_started
    server.stop()
    _report(seconds, rows, work_cpu, server.seconds)


async def run_download(base_url: str, provider_batch_id: str) -> None:
    got = 0
    async with httpx.AsyncClient(timeout=120) as http:
        started = time.perf_counter()
        async with http.stream(
            "GET",
            f"{base_url}/files/file-{provider_batch_id}/content",
            headers={"Accept-Encoding": "identity"},
        ) as response:
            async for chunk in response.aiter_raw():
                got += len(chunk)
        seconds = time.perf_counter() - started
    _report(seconds, got)


def _report(
    seconds: float, rows: int, work_cpu: float | None = None, server_cpu: float | None = None
) -> None:
    # CPU seconds of this process beside wall seconds: on a shared machine the wall clock carries
    # everyone's load, the CPU time only this run's own work (imports included; `work_cpu_seconds`
    # counts the timed work alone).
    usage = {
        "seconds": seconds,
        "rows": rows,
        "peak_rss_mib": _rss_mib(),
        "cpu_seconds": time.process_time(),
        "work_cpu_seconds": work_cpu,
        "server_cpu_seconds": server_cpu,
    }
    print(json.dumps(usage), flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("mode", choices=("durabatch", "plain", "copy", "download"))
    ap.add_argument("--base-url", default="")
    ap.add_argument("--database-url", default="")
    ap.add_argument("--batch-id", default="")
    ap.add_argument("--provider-batch-id", default="")
    ap.add_argument("--file", type=Path)
    ap.add_argument("--profile", type=Path, help="write a cProfile of the run here")
    a = ap.parse_args()
    if a.mode == "durabatch":
        job: Any = run_durabatch(a.base_url, a.database_url, a.batch_id, a.provider_batch_id)
    elif a.mode == "plain":
        job = run_plain(a.base_url, a.database_url, a.provider_batch_id, a.batch_id)
    elif a.mode == "copy":
        assert a.file is not None
        job = run_copy(a.database_url, a.batch_id, a.file)
    else:
        job = run_download(a.base_url, a.provider_batch_id)
    if a.profile:
        import cProfile

        with cProfile.Profile() as prof:
            asyncio.run(job)
        prof.dump_stats(str(a.profile))
    else:
        asyncio.run(job)


if __name__ == "__main__":
    main()

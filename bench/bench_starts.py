"""Batch starts that stay fast as the store grows, and staging beside the raw COPY limit.

Two figures, each side by side in one run, alternating A B A B, medians and the ratio per pair:

1. **Starts**: K concurrent batch starts (default 100; small inline batches) until every one has
   its provider batch recorded (claimed, staged, submitted to the emulator), against a store whose
   `requests` table is empty (A) and one holding `--big-rows` rows (B, default 2,000,000). One
   Temporal dev server, one in-process worker per store, the emulator in its own process. Target:
   B within 20% of A (staging ran a table-wide ANALYZE before, so B queued behind its lock).
2. **Staging**: `--stage-rows` request lines staged by the real code path (read the file,
   validate every line, COPY; `durabatch.staging.stage_lines`) beside one
   `copy_records_to_table` of the same rows already parsed (the raw COPY limit). Target: >= 50%.
3. **Submit upload**: a shard submitted by the OpenAI client, its upload timed (streamed from the
   store into the multipart POST of the input file, until the answer) beside one POST of the same
   file, built in memory beforehand, to the same emulator (the network's pace). Target: streamed at
   the network's pace.

    python bench/bench_starts.py                              # ~2-3 minutes here
    python bench/bench_starts.py --big-rows 200000 --starts 20 --reps 1   # a quick look

Prints a table and writes JSON under bench/results/.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from temporalio.runtime import LoggingConfig, Runtime, TelemetryConfig, TelemetryFilter

ROOT = Path(__file__).resolve().parent.parent
for _path in (ROOT, ROOT / "bench"):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

from chaos_stack import API_KEY, Emulator, TemporalServer  # noqa: E402

from activities import ActivityDeps  # noqa: E402
from durabatch.models import WORKFLOW_TYPE, BatchInput, workflow_id_for  # noqa: E402
from durabatch.providers.base import BatchProvider, RequestLine, ShardSubmission  # noqa: E402
from durabatch.providers.jsonl import dumps_line  # noqa: E402
from durabatch.providers.registry import build_provider  # noqa: E402
from durabatch.requests_file import RequestsValidator  # noqa: E402
from durabatch.service import worker_for  # noqa: E402
from durabatch.settings import Settings  # noqa: E402
from durabatch.staging import file_lines, stage_lines  # noqa: E402
from durabatch.store import create_pool, migrate, requests  # noqa: E402
from durabatch.store.embedded import embedded_database_url, stop_embedded  # noqa: E402
from durabatch.store.pool import Pool, RawJSON  # noqa: E402
from durabatch.temporal import connect  # noqa: E402

KEY = API_KEY
ENDPOINT = "/v1/chat/completions"
FILLER_BATCH_ROWS = 50_000
BOUNDARY = "durabatch-bench-boundary"


def chat_body(i: int) -> dict[str, Any]:
    return {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": f"benchmark question {i}"}]}


def write_requests(path: Path, n: int) -> None:
    with path.open("w") as fh:
        for i in range(n):
            fh.write(json.dumps({"custom_id": f"r{i}", "body": chat_body(i)}) + "\n")


async def new_database(server_url: str, name: str) -> str:
    admin = await asyncpg.connect(server_url)
    try:
        await admin.execute(f"CREATE DATABASE {name}")
    finally:
        await admin.close()
    if "?" not in server_url:
        return server_url.rsplit("/", 1)[0] + f"/{name}"
    return server_url.replace("/postgres?", f"/{name}?")


async def fill_requests(pool: Pool, rows: int) -> float:
    """`rows` requests in filler batches (already submitted ones, as a busy store holds); seconds taken."""
    started = time.monotonic()
    async with pool.acquire() as conn:
        done = 0
        b = 0
        while done < rows:
            n = min(FILLER_BATCH_ROWS, rows - done)
            batch_id = f"filler-{b}"
            await conn.execute(
                """INSERT INTO batches (batch_id, workflow_id, provider, endpoint, model, metadata, status,
                       request_count) VALUES ($1, $2, 'openai', $3, 'gpt-4o-mini', '{}', 'completed', $4)""",
                batch_id,
                workflow_id_for(batch_id),
                ENDPOINT,
                n,
            )
            records = [
                (batch_id, f"r{i}", i + 1, 0, 0, RawJSON(json.dumps(chat_body(i)).encode()), 90)
                for i in range(n)
            ]
            await conn.copy_records_to_table(
                "requests",
                records=records,
                columns=["batch_id", "custom_id", "line_no", "shard", "round", "body", "byte_size"],
            )
            done += n
            b += 1
        # A store this size has had autovacuum through it; give it that steady state at once.
        await conn.execute("VACUUM ANALYZE requests")
    return time.monotonic() - started


@asynccontextmanager
async def store_worker(
    client: Any, url: str, emu_url: str, http: httpx.AsyncClient
) -> AsyncIterator[tuple[Settings, Pool]]:
    pool = await create_pool(url, min_size=1, max_size=10)
    async with pool.acquire() as conn:
        await migrate(conn)
    settings = Settings(
        task_queue=f"starts-{uuid.uuid4().hex[:8]}",
        database_url=url,
        openai_base_url=f"{emu_url}/v1",
    )
    deps = ActivityDeps(pool=pool, settings=settings, http=http, provider_factory=build_provider)
    try:
        async with worker_for(client, settings, deps):
            yield settings, pool
    finally:
        await pool.close()


async def starts_round(client: Any, settings: Settings, pool: Pool, k: int, tag: str) -> float:
    """Seconds from K concurrent starts until each batch has its provider batch recorded."""
    ids = [f"{tag}-{uuid.uuid4().hex[:8]}" for _ in range(k)]

    async def start(batch_id: str) -> Any:
        inp = BatchInput(
            batch_id=batch_id,
            provider="openai",
            endpoint=ENDPOINT,
            requests=[{"custom_id": f"r{i}", "body": chat_body(i)} for i in range(5)],
            poll_schedule_seconds=[600.0],  # no polls during the measurement
        )
        return await client.start_workflow(
            WORKFLOW_TYPE, inp, id=workflow_id_for(batch_id), task_queue=settings.task_queue
        )

    started = time.monotonic()
    handles = await asyncio.gather(*(start(b) for b in ids))
    while True:
        n = await pool.fetchval(
            "SELECT count(DISTINCT batch_id) FROM provider_batches WHERE batch_id = ANY($1)", ids
        )
        if n == k:
            break
        if time.monotonic() - started > 600:
            raise RuntimeError(f"only {n} of {k} batches submitted after 600 s")
        await asyncio.sleep(0.1)
    elapsed = time.monotonic() - started
    await asyncio.gather(*(h.terminate("benchmark round over") for h in handles))
    return elapsed


async def stage_once(pool: Pool, path: Path) -> float:
    batch_id = f"stage-{uuid.uuid4().hex[:8]}"
    await _batch_row(pool, batch_id)
    started = time.monotonic()
    async with pool.acquire() as conn, conn.transaction():
        validator = RequestsValidator("openai", ENDPOINT, "gpt-4o-mini")
        await stage_lines(conn, batch_id, validator, file_lines(path), source=str(path))
    elapsed = time.monotonic() - started
    await pool.execute("DELETE FROM batches WHERE batch_id = $1", batch_id)
    return elapsed


async def raw_copy_once(pool: Pool, records: list[tuple[Any, ...]]) -> float:
    batch_id = f"raw-{uuid.uuid4().hex[:8]}"
    await _batch_row(pool, batch_id)
    rows = [(batch_id, *r) for r in records]
    started = time.monotonic()
    async with pool.acquire() as conn, conn.transaction():
        await conn.copy_records_to_table(
            "requests",
            records=rows,
            columns=["batch_id", "custom_id", "line_no", "shard", "round", "body", "byte_size"],
        )
    elapsed = time.monotonic() - started
    await pool.execute("DELETE FROM batches WHERE batch_id = $1", batch_id)
    return elapsed


async def staged_batch(pool: Pool, path: Path) -> str:
    """A batch whose requests are staged (kept: the submit figures read it)."""
    batch_id = f"submit-{uuid.uuid4().hex[:8]}"
    await _batch_row(pool, batch_id)
    async with pool.acquire() as conn, conn.transaction():
        validator = RequestsValidator("openai", ENDPOINT, "gpt-4o-mini")
        await stage_lines(conn, batch_id, validator, file_lines(path), source=str(path))
    return batch_id


def submission_of(pool: Pool, batch_id: str, n: int) -> ShardSubmission:
    async def lines() -> AsyncIterator[RequestLine]:
        async for custom_id, body in requests.iter_shard(pool, batch_id, 0, 0):
            yield RequestLine(custom_id=custom_id, body=body)

    return ShardSubmission(
        tag=f"bench-{uuid.uuid4().hex[:8]}",
        batch_id=batch_id,
        shard=0,
        round=0,
        endpoint=ENDPOINT,
        model="gpt-4o-mini",
        request_count=n,
        byte_size=0,
        requests=lines,
    )


async def submit_once(provider: BatchProvider, pool: Pool, batch_id: str, n: int) -> float:
    """The submit path's upload: the shard streamed from the store into the input file's POST,
    timed to the upload's answer (`on_uploaded`); the batch is then created, untimed (the emulator
    checks every line of the file there, which is the provider's time, not the upload's)."""
    uploaded: list[float] = []

    async def on_uploaded(file_id: str) -> None:
        uploaded.append(time.monotonic())

    submission = dataclasses.replace(submission_of(pool, batch_id, n), on_uploaded=on_uploaded)
    started = time.monotonic()
    await provider.submit(submission)
    return uploaded[0] - started


async def upload_body(pool: Pool, batch_id: str) -> bytes:
    """The input file the submit uploads, built in memory beforehand (one multipart part)."""
    lines = [
        dumps_line({"custom_id": cid, "method": "POST", "url": ENDPOINT, "body": body})
        async for cid, body in requests.iter_shard(pool, batch_id, 0, 0)
    ]
    return (
        (
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nbatch\r\n'
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="raw.jsonl"\r\n'
            "Content-Type: application/jsonl\r\n\r\n"
        ).encode()
        + b"".join(lines)
        + f"\r\n--{BOUNDARY}--\r\n".encode()
    )


async def raw_upload_once(http: httpx.AsyncClient, emu_url: str, body: bytes) -> float:
    """The network's pace: the same file, already in memory, in one POST to the same server."""
    started = time.monotonic()
    response = await http.post(
        f"{emu_url}/v1/files",
        content=body,
        headers={
            "Authorization": f"Bearer {KEY}",
            "Content-Type": f"multipart/form-data; boundary={BOUNDARY}",
        },
    )
    response.raise_for_status()
    return time.monotonic() - started


async def _batch_row(pool: Pool, batch_id: str) -> None:
    await pool.execute(
        """INSERT INTO batches (batch_id, workflow_id, provider, endpoint, metadata)
           VALUES ($1, $2, 'openai', $3, '{}')""",
        batch_id,
        workflow_id_for(batch_id),
        ENDPOINT,
    )


async def alternate(
    a: Callable[[], Awaitable[float]], b: Callable[[], Awaitable[float]], reps: int
) -> tuple[list[float], list[float]]:
    xs: list[float] = []
    ys: list[float] = []
    for _ in range(reps):
        xs.append(await a())
        ys.append(await b())
    return xs, ys


async def run(args: argparse.Namespace, server_url: str, work: Path) -> dict[str, Any]:
    suffix = uuid.uuid4().hex[:6]
    url_a = await new_database(server_url, f"starts_empty_{suffix}")
    url_b = await new_database(server_url, f"starts_big_{suffix}")
    temporal = TemporalServer(work)
    await temporal.start()
    # the emulator in a process of its own: its work (storing and checking uploads, answering
    # creates) is the provider's, never the measured side's
    emu = Emulator(work, validating_seconds=3600.0)
    await emu.start()
    result: dict[str, Any] = {
        "args": vars(args),
        "date": datetime.now(UTC).isoformat(),
        "load_average_start": os.getloadavg(),
    }
    try:
        # terminating each round's batches makes the core SDK warn about their in-flight tasks
        quiet = Runtime(
            telemetry=TelemetryConfig(
                logging=LoggingConfig(filter=TelemetryFilter(core_level="ERROR", other_level="ERROR"))
            )
        )
        client = await connect(Settings(temporal_address=temporal.address), runtime=quiet)
        os.environ["OPENAI_API_KEY"] = KEY
        async with (
            httpx.AsyncClient(timeout=60) as http,
            store_worker(client, url_a, emu.url, http) as (settings_a, pool_a),
            store_worker(client, url_b, emu.url, http) as (settings_b, pool_b),
        ):
            print(f"filling the big store with {args.big_rows:,} requests ...", flush=True)
            fill_s = await fill_requests(pool_b, args.big_rows)
            print(f"  {fill_s:.1f} s", flush=True)
            result["fill_seconds"] = fill_s
            # a warm-up round each, not counted (first workflow tasks, connections)
            await starts_round(client, settings_a, pool_a, 5, "warm")
            await starts_round(client, settings_b, pool_b, 5, "warm")
            a, b = await alternate(
                lambda: starts_round(client, settings_a, pool_a, args.starts, "a"),
                lambda: starts_round(client, settings_b, pool_b, args.starts, "b"),
                args.reps,
            )
            result["starts"] = {"empty_s": a, "big_s": b}

            path = work / "stage.jsonl"
            write_requests(path, args.stage_rows)
            validator = RequestsValidator("openai", ENDPOINT, "gpt-4o-mini")
            records = []
            with path.open("rb") as fh:
                for no, raw in enumerate(fh, start=1):
                    row = validator.feed(no, raw)
                    assert row is not None
                    records.append((row.custom_id, no, 0, 0, json.loads(row.body), row.byte_size))
            s, r = await alternate(
                lambda: stage_once(pool_a, path), lambda: raw_copy_once(pool_a, records), args.reps
            )
            result["staging"] = {"stage_s": s, "raw_copy_s": r, "rows": args.stage_rows}

            submit_path = work / "submit.jsonl"
            write_requests(submit_path, args.submit_rows)
            staged = await staged_batch(pool_a, submit_path)
            body = await upload_body(pool_a, staged)
            provider = build_provider("openai", settings_a, http)
            u, w = await alternate(
                lambda: submit_once(provider, pool_a, staged, args.submit_rows),
                lambda: raw_upload_once(http, emu.url, body),
                args.reps,
            )
            result["submit"] = {
                "submit_s": u,
                "raw_upload_s": w,
                "rows": args.submit_rows,
                "bytes": len(body),
            }
            result["load_average_end"] = os.getloadavg()
    finally:
        await emu.stop()
        await temporal.stop()
    return result


def report(result: dict[str, Any]) -> None:
    args = result["args"]
    a, b = result["starts"]["empty_s"], result["starts"]["big_s"]
    ma, mb = statistics.median(a), statistics.median(b)
    s, r = result["staging"]["stage_s"], result["staging"]["raw_copy_s"]
    ms, mr = statistics.median(s), statistics.median(r)
    n = result["staging"]["rows"]
    k = args["starts"]
    u, w = result["submit"]["submit_s"], result["submit"]["raw_upload_s"]
    mu, mw = statistics.median(u), statistics.median(w)
    upload_mb = result["submit"]["bytes"] / 1e6
    n_submit = result["submit"]["rows"]
    result["summary"] = {
        "starts_per_s_empty": k / ma,
        "starts_per_s_big": k / mb,
        "starts_big_over_empty": (k / mb) / (k / ma),
        # each pair's own ratio (big store's starts/s over the empty one's, run back to back): on
        # a shared machine the load moves between pairs, so the spread says more than one median
        "starts_big_over_empty_per_pair": [x / y for x, y in zip(a, b, strict=True)],
        "stage_over_raw_copy_per_pair": [y / x for x, y in zip(s, r, strict=True)],
        "submit_mb_per_s": upload_mb / mu,
        "raw_upload_mb_per_s": upload_mb / mw,
        "submit_over_raw_upload": mw / mu,
        "submit_over_raw_upload_per_pair": [y / x for x, y in zip(u, w, strict=True)],
        "stage_lines_per_s": n / ms,
        "raw_copy_lines_per_s": n / mr,
        "stage_over_raw_copy": mr / ms,
    }
    sm = result["summary"]
    print()
    print(f"{'figure':<44}{'durabatch':>14}{'reference':>14}{'ratio':>8}  target")
    print(
        f"{f'{k} concurrent starts, starts/s':<44}{sm['starts_per_s_big']:>14.1f}{sm['starts_per_s_empty']:>14.1f}"
        f"{sm['starts_big_over_empty']:>8.2f}  0.80-1.25 (within 20%)"
    )
    print(f"{'  (durabatch: ' + format(args['big_rows'], ',') + ' rows; reference: empty)':<44}")
    print(
        f"{f'staging {n:,} lines, lines/s':<44}{sm['stage_lines_per_s']:>14,.0f}{sm['raw_copy_lines_per_s']:>14,.0f}"
        f"{sm['stage_over_raw_copy']:>8.2f}  >= 0.50"
    )
    print("  (reference: one copy_records_to_table of the same rows, already parsed)")
    print(
        f"{f'submit {n_submit:,} requests ({upload_mb:.1f} MB), MB/s':<44}{sm['submit_mb_per_s']:>14.1f}{sm['raw_upload_mb_per_s']:>14.1f}"
        f"{sm['submit_over_raw_upload']:>8.2f}  the network's pace"
    )
    print("  (durabatch: the shard streamed from the store into the input file's upload;")
    print("   reference: the same file, already in memory, in one POST to the same emulator)")
    print(f"pairs (s): starts empty {[round(x, 2) for x in a]} big {[round(x, 2) for x in b]}")
    print(f"           ratios {[round(x, 2) for x in sm['starts_big_over_empty_per_pair']]}")
    print(f"           stage {[round(x, 3) for x in s]} raw COPY {[round(x, 3) for x in r]}")
    print(f"           ratios {[round(x, 2) for x in sm['stage_over_raw_copy_per_pair']]}")
    print(f"           submit {[round(x, 3) for x in u]} raw upload {[round(x, 3) for x in w]}")
    print(f"           ratios {[round(x, 2) for x in sm['submit_over_raw_upload_per_pair']]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--starts", type=int, default=100, help="concurrent starts per round")
    parser.add_argument("--big-rows", type=int, default=2_000_000, help="rows in the big store's requests")
    parser.add_argument("--stage-rows", type=int, default=100_000, help="lines staged per staging pair")
    parser.add_argument(
        "--submit-rows", type=int, default=50_000, help="requests per submit (OpenAI's batch limit: 50,000)"
    )
    parser.add_argument("--reps", type=int, default=2, help="A B pairs per figure")
    parser.add_argument("--database-url", default="", help="a PostgreSQL server (default: embedded)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="durabatch-bench-starts-"))
    work.chmod(0o755)  # the embedded server may run as its own user
    try:
        server_url = args.database_url or embedded_database_url(work)
        result = asyncio.run(run(args, server_url, work))
        report(result)
        out_dir = ROOT / "bench" / "results"
        out_dir.mkdir(parents=True, exist_ok=True)
        out = out_dir / f"starts-{datetime.now(UTC).strftime('%Y%m%dT%H%M%S')}.json"
        out.write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {out}")
    finally:
        if not args.database_url:
            stop_embedded(work)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

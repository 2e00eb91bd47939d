"""Emulator benchmark: status requests per second, and memory while streaming a ~200 MB output file.

Runs the emulator as its own process (`python -m durabatch.emulator`) so the figures are the
server's, not the load generator's. Prints figures; asserts nothing.

    .venv/bin/python bench/bench_emulator.py [--seconds 5] [--concurrency 64] [--clients 2]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import aiohttp

KEY = "bench-key"
H = {"Authorization": f"Bearer {KEY}"}


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def start_emulator() -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "durabatch.emulator",
            "--port",
            "0",
            "--api-key",
            KEY,
            "--validating-seconds",
            "0",
            "--ms-per-request",
            "0",
            "--finalizing-seconds",
            "0",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    return proc, line.rsplit(" ", 1)[1]


async def create_batch(s: aiohttp.ClientSession, url: str, n: int) -> dict[str, Any]:
    lines = "".join(
        json.dumps(
            {
                "custom_id": f"r{i}",
                "method": "POST",
                "url": "/v1/chat/completions",
                "body": {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": f"q {i}"}]},
            }
        )
        + "\n"
        for i in range(n)
    )
    form = aiohttp.FormData()
    form.add_field("purpose", "batch")
    form.add_field("file", lines.encode(), filename="in.jsonl")
    async with s.post(f"{url}/v1/files", data=form, headers=H) as r:
        file_id = (await r.json())["id"]
    body = {"input_file_id": file_id, "endpoint": "/v1/chat/completions", "completion_window": "24h"}
    async with s.post(f"{url}/v1/batches", json=body, headers=H) as r:
        batch: dict[str, Any] = await r.json()
    while batch["status"] not in ("completed", "failed"):
        await asyncio.sleep(0.05)
        async with s.get(f"{url}/v1/batches/{batch['id']}", headers=H) as r:
            batch = await r.json()
    return batch


async def _hammer(url: str, batch_id: str, seconds: float, concurrency: int) -> int:
    done = 0
    deadline = time.monotonic() + seconds
    conn = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=conn) as s:

        async def worker() -> None:
            nonlocal done
            while time.monotonic() < deadline:
                async with s.get(f"{url}/v1/batches/{batch_id}", headers=H) as r:
                    await r.read()
                    assert r.status == 200
                done += 1

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return done


def _client_process(
    url: str, batch_id: str, seconds: float, concurrency: int, out: multiprocessing.Queue[int]
) -> None:
    out.put(asyncio.run(_hammer(url, batch_id, seconds, concurrency)))


def status_throughput(url: str, batch_id: str, seconds: float, concurrency: int, clients: int) -> float:
    q: multiprocessing.Queue[int] = multiprocessing.Queue()
    procs = [
        multiprocessing.Process(target=_client_process, args=(url, batch_id, seconds, concurrency, q))
        for _ in range(clients)
    ]
    t = time.monotonic()
    for p in procs:
        p.start()
    total = sum(q.get() for _ in procs)
    for p in procs:
        p.join()
    return float(total) / (time.monotonic() - t)


async def _download(s: aiohttp.ClientSession, url: str, file_id: str) -> int:
    got = 0
    async with s.get(f"{url}/v1/files/{file_id}/content", headers=H) as r:
        async for chunk in r.content.iter_chunked(1 << 20):
            got += len(chunk)
    return got


async def _set_padding(s: aiohttp.ClientSession, url: str, pad: int) -> None:
    async with s.patch(f"{url}/_emulator/config", json={"output_padding_bytes": pad}) as r:
        r.raise_for_status()


async def stream_big_file(url: str, pid: int, target_mb: int) -> None:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=600)) as s:
        # The padding is what a line lacks to reach the target: measure an unpadded line rather than
        # assume one (they are ~770 bytes, not 700), and count the padding field's own bytes.
        await _set_padding(s, url, 0)
        probe = await create_batch(s, url, 1000)
        natural = await _download(s, url, probe["output_file_id"]) / 1000
        # 50,000 lines (OpenAI's most per batch), fewer when even unpadded lines would overshoot
        n = max(1000, min(50_000, int(target_mb * 1_000_000 / natural)))
        pad = max(0, int(target_mb * 1_000_000 / n - natural - len(',"x_emulator_padding":""')))
        await _set_padding(s, url, pad)
        batch = await create_batch(s, url, n)
        await _set_padding(s, url, 0)
        # The first request for a generated file sizes it with one generation pass (then cached);
        # ask for one byte first so the timed download is the stream alone.
        ranged = {**H, "Range": "bytes=0-0"}
        async with s.get(f"{url}/v1/files/{batch['output_file_id']}/content", headers=ranged) as r:
            length = int(r.headers["Content-Range"].rsplit("/", 1)[1])
            await r.read()
        base = rss_kib(pid)
        peak = base
        stop = threading.Event()

        def sample() -> None:
            nonlocal peak
            while not stop.is_set():
                peak = max(peak, rss_kib(pid))
                time.sleep(0.02)

        sampler = threading.Thread(target=sample)
        sampler.start()
        t = time.monotonic()
        got = await _download(s, url, batch["output_file_id"])
        elapsed = time.monotonic() - t
        stop.set()
        sampler.join()
    assert got == length
    print(
        f"output file streamed:   {got / 1e6:,.1f} MB (asked for {target_mb} MB) in {elapsed:.1f} s"
        f" ({got / 1e6 / elapsed:,.0f} MB/s, the emulator generating each line as it streams)"
    )
    print(f"server RSS before:      {base / 1024:,.1f} MiB")
    print(f"server RSS peak growth: {(peak - base) / 1024:,.1f} MiB while streaming")


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--clients", type=int, default=2, help="load-generator processes")
    ap.add_argument("--file-mb", type=int, default=200)
    a = ap.parse_args()
    proc, url = start_emulator()
    try:
        async with aiohttp.ClientSession() as s:
            batch = await create_batch(s, url, 1000)
        rate = status_throughput(url, batch["id"], a.seconds, a.concurrency, a.clients)
        print(
            f"status GETs per second: {rate:,.0f} (one emulator process, {a.clients} client processes "
            f"x {a.concurrency} connections, {a.seconds:g} s)"
        )
        await stream_big_file(url, proc.pid, a.file_mb)
    finally:
        proc.terminate()
        proc.wait(timeout=10)


if __name__ == "__main__":
    asyncio.run(main())

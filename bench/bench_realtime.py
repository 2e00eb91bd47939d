"""Real time under a provider's rate limit: the achieved rate as a share of the limit.

The emulator runs in its own process with `--rpm R` (it answers 429 with `Retry-After` and the
rate-limit headers past it). durabatch's `RealtimeClient` (what `run_realtime_chunk` runs) sends
N chat requests at concurrency C, twice, side by side:
- **paced**: the client's own limit set to R, as `DURABATCH_OPENAI_RPM` (or `realtime.rpm`) does;
- **unpaced**: no client limit, so only the provider's 429s and their `Retry-After` slow it down.

For each it prints requests per minute achieved, that as a share of R (the reference: the most the
provider allows), the 429s the emulator answered, and requests the emulator answered more than once.

    python bench/bench_realtime.py                     # R=300, N=450, C=16: about 3 minutes
    python bench/bench_realtime.py --rpm 120 --requests 150

Prints a table and writes JSON under bench/results/.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from chaos_stack import API_KEY, Emulator

from durabatch.providers.client_base import ProviderClient
from durabatch.providers.ratelimit import CallLimits, RateLimiter
from durabatch.providers.realtime import RealtimeClient
from durabatch.providers.registry import build_provider
from durabatch.settings import Settings

RESULTS = Path(__file__).resolve().parent / "results"


async def run_once(url: str, n: int, concurrency: int, client_rpm: int | None, label: str) -> dict[str, Any]:
    os.environ["OPENAI_API_KEY"] = API_KEY
    async with httpx.AsyncClient(timeout=60) as http:
        stats_before = (await http.get(f"{url}/_emulator/stats")).json().get("realtime", {})
        provider = build_provider("openai", Settings(openai_base_url=f"{url}/v1"), http)
        assert isinstance(provider, ProviderClient)
        limits = CallLimits(concurrency=concurrency, rpm=client_rpm)
        client = RealtimeClient(
            provider,
            "/v1/chat/completions",
            limits,
            model="gpt-4o-mini",
            limiter=RateLimiter(client_rpm, None),
        )
        sem = asyncio.Semaphore(concurrency)

        async def one(i: int) -> str:
            body = {
                "model": "gpt-4o-mini",
                "messages": [{"role": "user", "content": f"{label} question {i}"}],
            }
            async with sem:
                line = await client.call(f"{label}-{i}", body)
            return line.outcome

        started = time.monotonic()
        outcomes = await asyncio.gather(*(one(i) for i in range(n)))
        elapsed = time.monotonic() - started
        stats_after = (await http.get(f"{url}/_emulator/stats")).json().get("realtime", {})
    delta = {k: stats_after.get(k, 0) - stats_before.get(k, 0) for k in stats_after}
    ok = sum(v for k, v in delta.items() if k.endswith(":ok"))
    return {
        "run": label,
        "requests": n,
        "succeeded": outcomes.count("succeeded"),
        "seconds": round(elapsed, 2),
        "achieved_rpm": round(n / elapsed * 60, 1),
        "answered_429": sum(v for k, v in delta.items() if k.endswith(":rate_limited")),
        "answered_more_than_once": max(0, ok - n),
    }


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    # more requests than the limit allows in a minute, so that the unpaced run meets the 429s
    parser.add_argument("--rpm", type=int, default=300)
    parser.add_argument("--requests", type=int, default=450)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()

    rows: list[dict[str, Any]] = []
    for label, client_rpm in (("paced", args.rpm), ("unpaced", None)):
        # a fresh emulator per run: its one-minute window must not carry the last run's calls
        emulator = Emulator(Path(tempfile.mkdtemp(prefix="durabatch-realtime-")), rpm=args.rpm)
        try:
            await emulator.start()
            row = await run_once(emulator.url, args.requests, args.concurrency, client_rpm, label)
        finally:
            await emulator.stop()
        row["share_of_limit"] = round(row["achieved_rpm"] / args.rpm, 3)
        rows.append(row)
        print(json.dumps(row), flush=True)

    print(
        f"\nemulator limit: {args.rpm} requests/min; {args.requests} requests at concurrency {args.concurrency}"
    )
    print(f"{'run':>8} {'seconds':>8} {'req/min':>8} {'share':>6} {'429s':>5} {'twice':>5}")
    for r in rows:
        print(
            f"{r['run']:>8} {r['seconds']:>8} {r['achieved_rpm']:>8} {r['share_of_limit']:>6.0%} "
            f"{r['answered_429']:>5} {r['answered_more_than_once']:>5}"
        )
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"realtime-{time.strftime('%Y%m%dT%H%M%S')}.json"
    out.write_text(json.dumps({"rpm": args.rpm, "rows": rows}, indent=2))
    print(f"written {out}")


if __name__ == "__main__":
    asyncio.run(main())

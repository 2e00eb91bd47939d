"""Ingest benchmark: durabatch's `ingest_results` beside its limits and beside the plain script.

For each case (a finished OpenAI output file of N results at a given size) and each repetition,
in this order, every run in a process of its own:

1. ``download``  - the raw download rate: the file read from the provider and dropped;
2. ``durabatch`` - `ingest_results` from "completed" to every row committed (the A of both pairs);
3. ``copy``      - the raw COPY limit: the same rows, parsed beforehand, in one COPY (B of pair 1);
4. ``plain``     - the official-`openai`-SDK script, whole file, `executemany` (B of pair 2).

The provider is `frozen_provider.py` in its own process, serving the file from disk (the emulator's
own answers and line shape, generated once), so the provider's work is not ingest time. Medians over
the repetitions, the ratio of each pair per repetition, and each process's own peak RSS are printed
as a table and written as JSON under bench/results/.

    python bench/bench_pipeline.py                 # 5k, 20 MB, 40 MB (50k) and 200 MB (50k); 3 reps
    python bench/bench_pipeline.py --big           # also 500k results and 1 GB (50k)
    python bench/bench_pipeline.py --cases 50k --reps 1 --profile /tmp/ingest.prof
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
for _path in (ROOT, ROOT / "bench"):  # the repo (durabatch) and this folder (frozen_provider)
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

import asyncpg  # noqa: E402
from frozen_provider import request_body, write_output_file  # noqa: E402

from durabatch.store import batches, migrate, requests  # noqa: E402
from durabatch.store.embedded import embedded_database_url, stop_embedded  # noqa: E402
from durabatch.store.pool import create_pool  # noqa: E402

MB = 1_000_000
#: name -> (results, target file size in bytes or None for unpadded lines)
CASES: dict[str, tuple[int, int | None]] = {
    "5k": (5_000, None),
    "20MB": (26_000, None),
    "50k": (50_000, None),
    "200MB": (50_000, 200 * MB),
    "500k": (500_000, None),
    "1GB": (50_000, 1000 * MB),
}
DEFAULT_CASES = ("5k", "20MB", "50k", "200MB")
BIG_CASES = ("500k", "1GB")
RUNNER = Path(__file__).resolve().parent / "ingest_runner.py"
#: the plain script holds the whole file and every parsed line in memory (~3.5x the file): above
#: this size it is not run, so a 1 GB case cannot take the shared machine's memory
PLAIN_MAX_BYTES = 300 * MB


def run_mode(mode: str, *args: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, str(RUNNER), mode, *args], capture_output=True, text=True, timeout=900, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"{mode} run failed:\n{done.stderr[-4000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


async def prepare_batch(url: str, batch_id: str, n: int) -> None:
    """The batch and its n requests in one shard, as staging leaves them (untimed)."""
    pool = await create_pool(url, max_size=1)
    try:
        async with pool.acquire() as conn:
            await batches.create_batch(
                conn,
                batch_id=batch_id,
                workflow_id=f"batch-{batch_id}",
                provider="openai",
                endpoint="/v1/chat/completions",
                model="gpt-4o-mini",
                metadata={},
            )
            chunk = 50_000
            for start in range(0, n, chunk):
                records = [
                    (batch_id, f"r{i}", i, 0, 0, request_body(i), 90)
                    for i in range(start, min(n, start + chunk))
                ]
                await requests.copy_requests(conn, records)
    finally:
        await pool.close()


async def drop_batches(url: str, batch_ids: list[str]) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("DELETE FROM results WHERE batch_id = ANY($1)", batch_ids)
        await conn.execute("DELETE FROM batches WHERE batch_id = ANY($1)", batch_ids)
        if await conn.fetchval("SELECT to_regclass('plain_results') IS NOT NULL"):
            await conn.execute("DELETE FROM plain_results WHERE batch_id = ANY($1)", batch_ids)
    finally:
        await conn.close()


def start_provider(folder: Path) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, str(Path(__file__).resolve().parent / "frozen_provider.py"), "--dir", str(folder)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    if not line.startswith("listening on "):
        proc.kill()
        raise RuntimeError(f"frozen provider did not start: {line!r}")
    return proc, line.removeprefix("listening on ") + "/v1"


def _median(runs: list[dict[str, Any]], key: str) -> float:
    return float(statistics.median(r[key] for r in runs))


async def bench(url: str, cases: list[str], reps: int, profile: Path | None) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="durabatch-bench-"))
    report: dict[str, Any] = {
        "cases": {},
        "reps": reps,
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "load_average_start": os.getloadavg(),
    }
    try:
        size_of: dict[str, int] = {}
        for name in cases:
            n, target = CASES[name]
            size = size_of[name] = write_output_file(work / f"b{name}.jsonl", n, target)
            print(f"case {name}: {n:,} results, {size / MB:,.1f} MB", flush=True)
        proc, base_url = start_provider(work)
        try:
            for name in cases:
                n, _ = CASES[name]
                file = work / f"b{name}.jsonl"
                runs: dict[str, list[dict[str, Any]]] = {
                    "download": [],
                    "durabatch": [],
                    "copy": [],
                    "plain": [],
                }
                for rep in range(reps):
                    tag = uuid.uuid4().hex[:6]
                    ids = {"durabatch": f"d{name}-{tag}", "copy": f"c{name}-{tag}", "plain": f"p{name}-{tag}"}
                    await prepare_batch(url, ids["durabatch"], n)
                    await prepare_batch(url, ids["copy"], 0)
                    common = [
                        "--base-url",
                        base_url,
                        "--database-url",
                        url,
                        "--provider-batch-id",
                        f"b{name}",
                    ]
                    runs["download"].append(run_mode("download", *common))
                    extra = ["--profile", str(profile)] if profile and rep == 0 else []
                    runs["durabatch"].append(
                        run_mode("durabatch", *common, "--batch-id", ids["durabatch"], *extra)
                    )
                    runs["copy"].append(
                        run_mode("copy", *common, "--batch-id", ids["copy"], "--file", str(file))
                    )
                    if size_of[name] <= PLAIN_MAX_BYTES:
                        runs["plain"].append(run_mode("plain", *common, "--batch-id", ids["plain"]))
                    assert runs["durabatch"][-1]["rows"] == n, runs["durabatch"][-1]
                    await drop_batches(url, list(ids.values()))
                report["cases"][name] = summarise(n, file.stat().st_size, runs)
                print_case(name, report["cases"][name])
        finally:
            proc.terminate()
            proc.wait(timeout=10)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report["load_average_end"] = os.getloadavg()
    return report


def summarise(n: int, size: int, runs: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    pairs_copy = [c["seconds"] / d["seconds"] for d, c in zip(runs["durabatch"], runs["copy"], strict=True)]
    pairs_plain = [
        p["seconds"] / d["seconds"] for d, p in zip(runs["durabatch"], runs["plain"], strict=False)
    ]
    ingest_s = _median(runs["durabatch"], "seconds")
    by_cpu = _by_cpu(runs)
    return {
        "results": n,
        "file_mb": size / MB,
        "durabatch_s": ingest_s,
        "durabatch_lines_per_s": n / ingest_s,
        "durabatch_mb_per_s": size / MB / ingest_s,
        "copy_limit_s": _median(runs["copy"], "seconds"),
        "download_limit_s": _median(runs["download"], "seconds"),
        "download_mb_per_s": size / MB / _median(runs["download"], "seconds"),
        "plain_s": _median(runs["plain"], "seconds") if runs["plain"] else None,
        "ingest_vs_copy_limit": statistics.median(pairs_copy),
        "ingest_vs_copy_limit_per_pair": pairs_copy,
        "speedup_vs_plain": statistics.median(pairs_plain) if pairs_plain else None,
        "speedup_vs_plain_per_pair": pairs_plain,
        "durabatch_peak_rss_mib": max(r["peak_rss_mib"] for r in runs["durabatch"]),
        "plain_peak_rss_mib": max(r["peak_rss_mib"] for r in runs["plain"]) if runs["plain"] else None,
        "durabatch_cpu_s": _median(runs["durabatch"], "cpu_seconds"),
        "plain_cpu_s": _median(runs["plain"], "cpu_seconds") if runs["plain"] else None,
        "durabatch_work_cpu_s": _median(runs["durabatch"], "work_cpu_seconds"),
        "plain_work_cpu_s": _median(runs["plain"], "work_cpu_seconds") if runs["plain"] else None,
        "copy_work_cpu_s": _median(runs["copy"], "work_cpu_seconds"),
        # the database server's CPU over the same window: with the process's own, the run's work
        "durabatch_server_cpu_s": _median(runs["durabatch"], "server_cpu_seconds"),
        "copy_server_cpu_s": _median(runs["copy"], "server_cpu_seconds"),
        "plain_server_cpu_s": _median(runs["plain"], "server_cpu_seconds") if runs["plain"] else None,
        "runs": runs,
        "speedup_vs_plain_by_cpu": statistics.median(by_cpu) if by_cpu else None,
        "speedup_vs_plain_by_cpu_per_pair": by_cpu,
    }


def _by_cpu(runs: dict[str, list[dict[str, Any]]]) -> list[float]:
    """plain / durabatch in CPU seconds of the process and the database server together, per pair:
    the work each did, which a loaded machine's wall clock hides."""
    return [
        (p["work_cpu_seconds"] + p["server_cpu_seconds"]) / (d["work_cpu_seconds"] + d["server_cpu_seconds"])
        for d, p in zip(runs["durabatch"], runs["plain"], strict=False)
    ]


def _f(value: float | None, spec: str, suffix: str = "") -> str:
    return "-" if value is None else f"{value:{spec}}{suffix}"


def print_case(name: str, c: dict[str, Any]) -> None:
    print(
        f"  {name:>6}: durabatch {c['durabatch_s']:6.2f} s ({c['durabatch_lines_per_s']:>8,.0f} lines/s)"
        f" | COPY limit {c['copy_limit_s']:5.2f} s -> {c['ingest_vs_copy_limit']:.0%} of it (target >= 50%)"
        f" | plain script {_f(c['plain_s'], '5.2f')} s -> {_f(c['speedup_vs_plain'], '.1f', 'x')} (target >= 3x)"
        f" | download limit {c['download_limit_s']:.2f} s ({c['download_mb_per_s']:,.0f} MB/s)"
        f" | peak RSS {c['durabatch_peak_rss_mib']:.0f} MiB vs plain {_f(c['plain_peak_rss_mib'], '.0f')} MiB",
        flush=True,
    )


def print_table(report: dict[str, Any]) -> None:
    header = (
        "| case | results | MB | durabatch s | lines/s | COPY limit s | % of limit | plain s | speed-up"
        " | download s | MB/s | RSS MiB | plain RSS MiB | CPU s | plain CPU s | work+db CPU s"
        " | plain work+db CPU s | speed-up by CPU |"
    )
    print("\n" + header)
    print("|" + "---|" * (header.count("|") - 1))
    for name, c in report["cases"].items():
        print(
            f"| {name} | {c['results']:,} | {c['file_mb']:,.0f} | {c['durabatch_s']:.2f} |"
            f" {c['durabatch_lines_per_s']:,.0f} | {c['copy_limit_s']:.2f} | {c['ingest_vs_copy_limit']:.0%} |"
            f" {_f(c['plain_s'], '.2f')} | {_f(c['speedup_vs_plain'], '.1f', 'x')} | {c['download_limit_s']:.2f} |"
            f" {c['download_mb_per_s']:,.0f} | {c['durabatch_peak_rss_mib']:.0f} |"
            f" {_f(c['plain_peak_rss_mib'], '.0f')} | {c['durabatch_cpu_s']:.2f} | {_f(c.get('plain_cpu_s'), '.2f')} |"
            f" {_sum(c['durabatch_work_cpu_s'], c['durabatch_server_cpu_s'])} |"
            f" {_sum(c['plain_work_cpu_s'], c['plain_server_cpu_s'])} |"
            f" {_f(c['speedup_vs_plain_by_cpu'], '.1f', 'x')} |"
        )


def _sum(a: float | None, b: float | None) -> str:
    return "-" if a is None or b is None else f"{a + b:.2f}"


async def run(server_url: str, cases: list[str], reps: int, profile: Path | None) -> dict[str, Any]:
    database = f"bench_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(server_url)
    await admin.execute(f"CREATE DATABASE {database}")
    await admin.close()
    url = server_url.rsplit("/", 1)[0] + f"/{database}"
    if "?" in server_url:
        url = server_url.replace("/postgres?", f"/{database}?")
    try:
        conn = await asyncpg.connect(url)
        try:
            await migrate(conn)
        finally:
            await conn.close()
        return await bench(url, cases, reps, profile)
    finally:
        admin = await asyncpg.connect(server_url)
        await admin.execute(f"DROP DATABASE IF EXISTS {database}")
        await admin.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--cases", default=",".join(DEFAULT_CASES), help=f"comma-separated, of {', '.join(CASES)}"
    )
    ap.add_argument("--big", action="store_true", help=f"add {', '.join(BIG_CASES)}")
    ap.add_argument("--reps", type=int, default=3, help="repetitions of each A B pair (default 3)")
    ap.add_argument("--database-url", default="", help="a PostgreSQL server URL (default: embedded)")
    ap.add_argument("--profile", type=Path, help="cProfile the first durabatch run of each case to this file")
    ap.add_argument("--json-out", type=Path, default=ROOT / "bench" / "results")
    a = ap.parse_args()
    cases = [c for c in a.cases.split(",") if c] + (list(BIG_CASES) if a.big else [])
    unknown = [c for c in cases if c not in CASES]
    if unknown:
        ap.error(f"unknown case(s) {unknown}; choose from {', '.join(CASES)}")
    data_dir: Path | None = None
    if a.database_url:
        server = a.database_url
    else:
        data_dir = Path(tempfile.mkdtemp(prefix="durabatch-bench-pg-"))
        data_dir.chmod(0o755)
        server = embedded_database_url(data_dir)
    try:
        report = asyncio.run(run(server, cases, a.reps, a.profile))
    finally:
        if data_dir is not None:
            stop_embedded(data_dir)
            shutil.rmtree(data_dir, ignore_errors=True)
    print_table(report)
    a.json_out.mkdir(parents=True, exist_ok=True)
    out = a.json_out / f"pipeline-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}.json"
    out.write_text(json.dumps(report, indent=2))
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()

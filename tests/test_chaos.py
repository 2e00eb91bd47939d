"""The chaos runner's short forms (issue 7 items 1 and 2), as part of `make test`.

Each runs `bench/chaos.py` in a subprocess (its own Temporal dev server, embedded PostgreSQL,
emulator and worker processes on free ports, under a temp dir) and asserts the figures it wrote.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
pytestmark = [pytest.mark.slow]


def run_chaos(tmp_path: Path, *args: str, timeout: float = 230) -> dict[str, Any]:
    out = tmp_path / "figures.json"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "chaos.py"), "--json-out", str(out), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    report = proc.stdout + proc.stderr[-6000:]
    assert out.exists(), report
    figures: dict[str, Any] = json.loads(out.read_text())
    assert proc.returncode == 0 and figures["failures"] == [], report
    return figures


def assert_invariants(f: dict[str, Any]) -> None:
    assert f["batches_started"] > 0
    assert f["batches_not_ended"] == 0 and f["batches_ended"] == f["batches_started"]
    assert f["workflows_failed"] == 0 and f["ended_by_status"].get("failed", 0) == 0
    assert f["requests_staged"] == f["requests_generated"]
    assert f["requests_zero_outcomes"] == 0 and f["requests_many_outcomes"] == 0
    assert f["shards_one_provider_batch"] == f["shards"] > 0
    assert f["shards_zero_provider_batches"] == f["shards_many_provider_batches"] == 0
    assert f["untracked_provider_batches"] == 0
    assert f["handlers_not_succeeded"] == 0
    assert f["batches_with_one_delivery"] == f["handlers_succeeded"] == f["batches_ended"]
    assert f["results_compared"] > 0 and f["results_differing"] == 0
    assert f["unexpected_outcomes"] == 0


@pytest.mark.timeout(260)
def test_short_chaos_run_keeps_every_invariant(tmp_path: Path) -> None:
    f = run_chaos(tmp_path, "--short", "--seed", "11")
    assert_invariants(f)
    kinds = f["events_by_kind"]
    assert kinds.get("kill_worker", 0) >= 4
    assert kinds.get("restart_temporal", 0) >= 1 and kinds.get("restart_postgres", 0) >= 1
    for phase in ("staging", "sleeping", "ingest", "handler"):
        assert f["phases_hit"].get(phase, 0) >= 1, f["phases_hit"]


@pytest.mark.timeout(200)
def test_two_workers_one_killed_for_good(tmp_path: Path) -> None:
    f = run_chaos(
        tmp_path,
        "--short",
        "--seed",
        "5",
        "--workers",
        "2",
        "--kill-one-for-good",
        "--events",
        "0",
        "--faults",
        "0",
        "--batches",
        "9",
        "--duration",
        "40",
        timeout=180,
    )
    assert_invariants(f)
    assert f["events_by_kind"].get("kill_worker_for_good") == 1

"""Every `durabatch` command end to end, as a subprocess against a running `durabatch dev`."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import signal
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from typer.testing import CliRunner

from durabatch.cli import app
from durabatch.devstack import DEV_API_KEY
from tests.cli.conftest import CLI, DevProcess, clean_env, run_cli
from tests.conftest import free_port, with_database
from tests.helpers import eventually_sync


def new_id(prefix: str = "cli") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def status_json(dev: DevProcess, batch_id: str) -> dict[str, Any]:
    r = run_cli("status", batch_id, "--json", env=dev.env)
    assert r.returncode == 0, r.stderr
    data: dict[str, Any] = json.loads(r.stdout)
    return data


def wait_for_status(
    dev: DevProcess, batch_id: str, statuses: set[str], timeout: float = 30
) -> dict[str, Any]:
    def fetch() -> dict[str, Any]:
        r = run_cli("status", batch_id, "--json", env=dev.env)
        assert r.returncode in (0, 3), r.stderr  # 3: the submitting process has not started it yet
        st: dict[str, Any] = json.loads(r.stdout) if r.returncode == 0 else {"status": None, "shards": []}
        return st

    def done(st: dict[str, Any]) -> bool:
        shards = st["shards"]
        return st["status"] in statuses and bool(shards) and all(s.get("provider_batch_id") for s in shards)

    return eventually_sync(fetch, done, timeout, what=f"status in {sorted(statuses)} with every shard sent")


@pytest.mark.parametrize(
    "command",
    [
        [],
        ["submit"],
        ["status"],
        ["list"],
        ["cancel"],
        ["redispatch"],
        ["results"],
        ["worker"],
        ["emulator"],
        ["hooks"],
        ["dev"],
        ["db"],
        ["db", "migrate"],
    ],
    ids=lambda c: " ".join(c) or "durabatch",
)
def test_help_has_an_example(command: list[str]) -> None:
    result = CliRunner().invoke(app, [*command, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "Example" in result.output


def test_submit_wait_shows_progress_and_summary_then_status_list_results(
    dev: DevProcess, requests_file: Path, tmp_path: Path
) -> None:
    batch_id = new_id()
    r = run_cli(
        "submit",
        str(requests_file),
        "--provider",
        "openai",
        "--endpoint",
        "/v1/chat/completions",
        "--batch-id",
        batch_id,
        "--poll",
        "1",
        "--wait",
        env=dev.env,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"started batch {batch_id}" in r.stdout
    assert "12/12" in r.stdout, "the progress bar counts requests done"
    assert "│ status" in r.stdout and "completed" in r.stdout and "succeeded" in r.stdout, r.stdout

    st = status_json(dev, batch_id)
    assert st["status"] == "completed"
    assert st["counts"]["total"] == st["counts"]["succeeded"] == 12
    r = run_cli("status", batch_id, env=dev.env)
    assert r.returncode == 0 and "completed" in r.stdout and "12: 12 ok" in r.stdout, r.stdout
    # the Web UI's summary, set at start, counts the file's requests; its details end completed
    summary, details = asyncio.run(_static_summary_and_details(dev, batch_id))
    assert summary == f"openai batch {batch_id}: 12 requests, model gpt-4o-mini", summary
    assert details is not None and "requests: " in details and "(12 requests)" in details, details

    # visibility is eventually consistent
    def listed() -> list[dict[str, Any]]:
        r = run_cli("list", "--status", "completed", "--provider", "openai", "--json", env=dev.env)
        assert r.returncode == 0, r.stderr
        return [json.loads(line) for line in r.stdout.splitlines()]

    rows = eventually_sync(listed, lambda rows: any(row["batch_id"] == batch_id for row in rows), 10)
    [row] = [row for row in rows if row["batch_id"] == batch_id]
    assert (row["status"], row["provider"], row["requests"]) == ("completed", "openai", 12)
    r = run_cli("list", "--status", "completed", env=dev.env)
    assert r.returncode == 0 and batch_id in r.stdout
    r = run_cli("list", "--status", "failed", "--json", env=dev.env)
    assert r.returncode == 0 and batch_id not in r.stdout

    # jsonl: the line shape of OpenAI's own output file, line for line
    r = run_cli("results", batch_id, env=dev.env)
    assert r.returncode == 0, r.stderr
    ours = [json.loads(line) for line in r.stdout.splitlines()]
    assert [line["custom_id"] for line in ours] == [f"r{i}" for i in range(12)]
    theirs = {line["custom_id"]: line for line in provider_output(dev, st["shards"][0]["provider_batch_id"])}
    for line in ours:
        provider_line = theirs[line["custom_id"]]
        assert set(line) == set(provider_line)
        assert set(line["response"]) == set(provider_line["response"])
        assert line["response"]["status_code"] == provider_line["response"]["status_code"]
        assert line["response"]["body"] == provider_line["response"]["body"]
        assert line["error"] == provider_line["error"]
        assert isinstance(line["id"], str)

    out_file = tmp_path / "results.csv"
    r = run_cli("results", batch_id, "--format", "csv", "--out", str(out_file), env=dev.env)
    assert r.returncode == 0 and "wrote 12 results" in r.stderr
    rows = list(csv.DictReader(io.StringIO(out_file.read_text())))
    assert len(rows) == 12 and {row["outcome"] for row in rows} == {"succeeded"}
    assert json.loads(rows[0]["body"]) == theirs["r0"]["response"]["body"]

    r = run_cli("results", batch_id, "--outcome", "failed", env=dev.env)
    assert r.returncode == 0 and r.stdout == ""


def provider_output(dev: DevProcess, provider_batch_id: str) -> list[dict[str, Any]]:
    base = f"http://127.0.0.1:{dev.emulator_port}/v1"
    headers = {"Authorization": f"Bearer {DEV_API_KEY}"}
    batch = httpx.get(f"{base}/batches/{provider_batch_id}", headers=headers).raise_for_status().json()
    content = httpx.get(f"{base}/files/{batch['output_file_id']}/content", headers=headers).raise_for_status()
    return [json.loads(line) for line in content.text.splitlines() if line.strip()]


@pytest.fixture
def slow_provider(dev: DevProcess) -> Iterator[None]:
    """Batches created meanwhile stay `validating` at the emulator for two minutes."""
    url = f"http://127.0.0.1:{dev.emulator_port}/_emulator/config"
    httpx.patch(url, json={"validating_seconds": 120}).raise_for_status()
    yield
    httpx.patch(url, json={"validating_seconds": 0.5}).raise_for_status()


def test_cancel_then_wait_ends_cancelled_and_second_cancel_says_ended(
    dev: DevProcess, requests_file: Path, slow_provider: None
) -> None:
    batch_id = new_id()
    r = run_cli(
        "submit",
        str(requests_file),
        "--provider",
        "openai",
        "--endpoint",
        "/v1/chat/completions",
        "--batch-id",
        batch_id,
        "--poll",
        "1",
        env=dev.env,
    )
    assert r.returncode == 0, r.stderr
    wait_for_status(dev, batch_id, {"submitted", "in_progress"})
    r = run_cli("cancel", batch_id, "--reason", "wrong prompt", env=dev.env)
    assert r.returncode == 0 and f"cancel requested for batch {batch_id}" in r.stdout, r.stderr
    r = run_cli("status", batch_id, "--wait", env=dev.env)
    assert r.returncode == 1, "a batch that did not complete exits 1"
    assert "cancelled" in r.stdout
    r = run_cli("cancel", batch_id, env=dev.env)
    assert r.returncode == 1
    assert "already ended (cancelled" in r.stderr


def test_ctrl_c_while_waiting_detaches_and_the_batch_keeps_running(
    dev: DevProcess, requests_file: Path, slow_provider: None
) -> None:
    batch_id = new_id()
    proc = subprocess.Popen(
        [
            CLI,
            "submit",
            str(requests_file),
            "--provider",
            "openai",
            "--endpoint",
            "/v1/chat/completions",
            "--batch-id",
            batch_id,
            "--poll",
            "1",
            "--wait",
        ],
        env=dev.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for_status(dev, batch_id, {"submitted", "in_progress"})
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, stdout + stderr
    assert f"detached: batch {batch_id} keeps running" in stderr
    assert f"durabatch status {batch_id} --wait" in stderr
    assert "Traceback" not in stderr
    assert status_json(dev, batch_id)["status"] in ("submitted", "in_progress")
    assert run_cli("cancel", batch_id, env=dev.env).returncode == 0
    r = run_cli("status", batch_id, "--wait", env=dev.env)
    assert r.returncode == 1 and "cancelled" in r.stdout, "reattached, and followed it to its end"


def test_unknown_batch_exits_3(dev: DevProcess) -> None:
    for command in (
        ["status", "nope-404"],
        ["status", "nope-404", "--json"],
        ["cancel", "nope-404"],
        ["results", "nope-404"],
    ):
        r = run_cli(*command, env=dev.env)
        assert r.returncode == 3, (command, r.stdout, r.stderr)
        assert "no batch 'nope-404'" in r.stderr
        assert "Traceback" not in r.stderr


def test_bad_file_and_bad_options_exit_2(dev: DevProcess, tmp_path: Path) -> None:
    def submit(path: Path, *extra: str) -> subprocess.CompletedProcess[str]:
        return run_cli(
            "submit",
            str(path),
            "--provider",
            "openai",
            "--endpoint",
            "/v1/chat/completions",
            *extra,
            env=dev.env,
        )

    r = submit(tmp_path / "missing.jsonl")
    assert r.returncode == 2 and "missing.jsonl: no such file" in r.stderr
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    r = submit(empty)
    assert r.returncode == 2 and "has no requests" in r.stderr
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"custom_id": "a", "body": {"messages": []}}\n{not json\n')
    r = submit(broken)
    assert r.returncode == 2 and "broken.jsonl:2: not valid JSON" in r.stderr
    listed = tmp_path / "list.jsonl"
    listed.write_text("[1, 2]\n")
    r = submit(listed)
    assert r.returncode == 2 and "list.jsonl:1: expected a JSON object, got an array" in r.stderr
    good = tmp_path / "good.jsonl"
    good.write_text('{"custom_id": "a"}\n')
    r = run_cli("submit", str(good), "--provider", "mistral", "--endpoint", "/v1/x", env=dev.env)
    assert r.returncode == 2 and "--provider must be one of openai, anthropic, gemini" in r.stderr
    r = submit(good, "--batch-id", "has space")
    assert r.returncode == 2 and "--batch-id" in r.stderr
    r = run_cli("results", "x", "--format", "xml", env=dev.env)
    assert r.returncode == 2 and "--format must be jsonl or csv" in r.stderr
    r = run_cli("submit", str(good), env=dev.env)
    assert r.returncode == 2, "a missing required option is a usage error"


def test_duplicate_batch_id_exits_2(dev: DevProcess, requests_file: Path) -> None:
    batch_id = new_id()
    args = (
        "submit",
        str(requests_file),
        "--provider",
        "openai",
        "--endpoint",
        "/v1/chat/completions",
        "--batch-id",
        batch_id,
        "--poll",
        "1",
    )
    assert run_cli(*args, env=dev.env).returncode == 0
    r = run_cli(*args, env=dev.env)
    assert r.returncode == 2 and "already exists" in r.stderr


def test_stack_not_running_exits_4(tmp_path: Path, requests_file: Path) -> None:
    nothing = clean_env(
        DURABATCH_TEMPORAL_ADDRESS=f"127.0.0.1:{free_port()}",
        DURABATCH_DATA_DIR=str(tmp_path / "no-stack"),
    )
    for command in (
        ["status", "b1"],
        ["list"],
        ["cancel", "b1"],
        ["submit", str(requests_file), "--provider", "openai", "--endpoint", "/v1/chat/completions"],
        ["worker"],
    ):
        r = run_cli(*command, env=nothing, timeout=30)
        assert r.returncode == 4, (command, r.stderr)
        assert "cannot reach Temporal" in r.stderr and "durabatch dev" in r.stderr
    for command in (["results", "b1"], ["db", "migrate"]):
        r = run_cli(*command, env=nothing)
        assert r.returncode == 4, (command, r.stderr)
        assert "no `durabatch dev` database runs" in r.stderr
        assert not (tmp_path / "no-stack" / "postgres").exists(), "the CLI never starts a database itself"
    bad_db = {**nothing, "DURABATCH_DATABASE_URL": f"postgresql://u:secret-pw@127.0.0.1:{free_port()}/db"}
    r = run_cli("results", "b1", env=bad_db)
    assert r.returncode == 4 and "cannot connect to PostgreSQL" in r.stderr
    assert "secret-pw" not in r.stderr


def test_bad_setting_exits_2() -> None:
    r = run_cli("status", "b1", env=clean_env(DURABATCH_TEMPORAL_ADDRESS="no-port"))
    assert r.returncode == 2 and "DURABATCH_TEMPORAL_ADDRESS" in r.stderr


async def test_db_migrate_applies_then_is_up_to_date(dev: DevProcess) -> None:
    name = f"migrate_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(dev.database_url)
    try:
        await admin.execute(f"CREATE DATABASE {name}")
    finally:
        await admin.close()
    env = {**dev.env, "DURABATCH_DATABASE_URL": with_database(dev.database_url, name)}
    r = run_cli("db", "migrate", env=env)
    assert r.returncode == 0 and "applied: 0001" in r.stdout, r.stdout + r.stderr
    r = run_cli("db", "migrate", env=env)
    assert r.returncode == 0 and "database is up to date" in r.stdout


def test_emulator_command_starts_and_answers() -> None:
    port = free_port()
    proc = subprocess.Popen(
        [
            CLI,
            "emulator",
            "--port",
            str(port),
            "--api-key",
            "k-123456789",
            "--validating-seconds",
            "0.25",
            "--ms-per-request",
            "3",
            "--finalizing-seconds",
            "0.75",
            "--expire-after-seconds",
            "60",
        ],
        env=clean_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert proc.stdout is not None
        assert "listening on" in proc.stdout.readline()
        health = httpx.get(f"http://127.0.0.1:{port}/_emulator/health")
        assert health.status_code == 200
        denied = httpx.get(f"http://127.0.0.1:{port}/v1/batches", headers={"Authorization": "Bearer wrong"})
        assert denied.status_code == 401
        listed = httpx.get(
            f"http://127.0.0.1:{port}/v1/batches", headers={"Authorization": "Bearer k-123456789"}
        )
        assert listed.status_code == 200
        config = httpx.patch(f"http://127.0.0.1:{port}/_emulator/config", json={}).json()
        timings = ("validating_seconds", "ms_per_request", "finalizing_seconds", "expire_after_seconds")
        assert [config[k] for k in timings] == [0.25, 3.0, 0.75, 60.0], config
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()  # left open, the pipe is a ResourceWarning


def test_worker_command_runs_batches_and_stops_on_sigterm(dev: DevProcess, requests_file: Path) -> None:
    queue = f"cli-worker-{uuid.uuid4().hex[:6]}"
    env = {
        **dev.env,
        "DURABATCH_TASK_QUEUE": queue,
        "DURABATCH_OPENAI_BASE_URL": f"http://127.0.0.1:{dev.emulator_port}/v1",
        "OPENAI_API_KEY": DEV_API_KEY,
    }
    worker = subprocess.Popen(
        [CLI, "worker"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        batch_id = new_id("wrk")
        r = run_cli(
            "submit",
            str(requests_file),
            "--provider",
            "openai",
            "--endpoint",
            "/v1/chat/completions",
            "--batch-id",
            batch_id,
            "--poll",
            "1",
            "--wait",
            env={k: v for k, v in env.items() if k != "OPENAI_API_KEY"},
        )
        assert r.returncode == 0, r.stdout + r.stderr
        worker.send_signal(signal.SIGTERM)
        _, stderr = worker.communicate(timeout=45)
    finally:
        if worker.poll() is None:
            worker.kill()
    assert worker.returncode == 0, stderr
    logs = [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]
    assert any(entry.get("msg", "").startswith("worker polling task queue") for entry in logs)
    assert any(entry.get("batch_id") == batch_id for entry in logs), "structured logs carry the batch id"
    assert DEV_API_KEY not in stderr


def test_worker_on_an_unknown_namespace_says_so(dev: DevProcess) -> None:
    r = run_cli("worker", env={**dev.env, "DURABATCH_TEMPORAL_NAMESPACE": "no-such-namespace"}, timeout=60)
    assert r.returncode == 2, r.stdout + r.stderr
    assert "namespace 'no-such-namespace' not found" in r.stderr, r.stderr
    assert "DURABATCH_TEMPORAL_NAMESPACE" in r.stderr and "Traceback" not in r.stderr


async def _static_summary_and_details(dev: DevProcess, batch_id: str) -> tuple[str | None, str | None]:
    from temporalio.client import Client

    client = await Client.connect(f"127.0.0.1:{dev.temporal_port}")
    desc = await client.get_workflow_handle(f"batch-{batch_id}").describe()
    return await desc.static_summary(), await desc.static_details()


def test_anthropic_batch_results_keep_anthropic_line_shapes_and_filter_by_outcome(
    dev: DevProcess, tmp_path: Path
) -> None:
    from durabatch.webhook_receiver import WebhookReceiver

    lines = [
        {
            "custom_id": f"a{i}" + ("__fail_400" if i in (2, 5) else ""),
            "params": {"max_tokens": 32, "messages": [{"role": "user", "content": f"question {i}"}]},
        }
        for i in range(6)
    ]
    path = tmp_path / "anthropic.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    batch_id = new_id()

    async def submit_with_a_webhook() -> tuple[subprocess.CompletedProcess[str], list[dict[str, Any]]]:
        async with WebhookReceiver() as receiver:
            args = ["submit", str(path), "--provider", "anthropic", "--endpoint", "/v1/messages"]
            args += ["--model", "claude-haiku-4-5", "--batch-id", batch_id, "--poll", "1"]
            args += ["--max-age", "3600", "--webhook", receiver.url, "--wait"]
            r = await asyncio.to_thread(run_cli, *args, env=dev.env)
            return r, [d.body for d in receiver.accepted]

    r, deliveries = asyncio.run(submit_with_a_webhook())
    assert r.returncode == 0, r.stdout + r.stderr
    assert len(deliveries) == 1 and deliveries[0]["batch_id"] == batch_id
    assert deliveries[0]["counts"]["succeeded"] == 4 and deliveries[0]["counts"]["failed"] == 2
    assert deliveries[0]["model"] == "claude-haiku-4-5"

    r = run_cli("results", batch_id, env=dev.env)
    assert r.returncode == 0, r.stderr
    ours = {line["custom_id"]: line for line in map(json.loads, r.stdout.splitlines())}
    assert list(ours) == [line["custom_id"] for line in lines], "input order"
    st = status_json(dev, batch_id)
    theirs = {
        line["custom_id"]: line for line in anthropic_results(dev, st["shards"][0]["provider_batch_id"])
    }
    for custom_id, line in ours.items():
        assert set(line) == {"custom_id", "result"}
        assert line["result"]["type"] == theirs[custom_id]["result"]["type"]
        if line["result"]["type"] == "succeeded":
            assert line["result"]["message"] == theirs[custom_id]["result"]["message"]
    assert {cid for cid, line in ours.items() if line["result"]["type"] == "errored"} == {
        "a2__fail_400",
        "a5__fail_400",
    }

    r = run_cli("results", batch_id, "--outcome", "failed", "--format", "csv", env=dev.env)
    assert r.returncode == 0, r.stderr
    rows = list(csv.DictReader(io.StringIO(r.stdout)))
    assert [row["custom_id"] for row in rows] == ["a2__fail_400", "a5__fail_400"]
    assert {row["outcome"] for row in rows} == {"failed"} and all(row["error_message"] for row in rows)


def anthropic_results(dev: DevProcess, provider_batch_id: str) -> list[dict[str, Any]]:
    base = f"http://127.0.0.1:{dev.emulator_port}/v1/messages/batches"
    headers = {"x-api-key": DEV_API_KEY, "anthropic-version": "2023-06-01"}
    content = httpx.get(f"{base}/{provider_batch_id}/results", headers=headers).raise_for_status()
    return [json.loads(line) for line in content.text.splitlines() if line.strip()]

"""Completion handlers from the command line: `submit --wait` exits 5 when a webhook fails,
`durabatch redispatch` runs it again, and `cancel` of an ended batch says so in one line."""

from __future__ import annotations

import asyncio
import subprocess
import uuid
from pathlib import Path

from durabatch.webhook_receiver import WebhookReceiver
from tests.cli.conftest import DevProcess, run_cli
from tests.conftest import free_port


def submit_wait(dev: DevProcess, path: Path, batch_id: str, url: str) -> subprocess.CompletedProcess[str]:
    return run_cli(
        "submit",
        str(path),
        "--provider",
        "openai",
        "--endpoint",
        "/v1/chat/completions",
        "--batch-id",
        batch_id,
        "--poll",
        "1",
        "--webhook",
        url,
        "--webhook-attempts",
        "1",
        "--wait",
        env=dev.env,
        timeout=120,
    )


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.strip()]


def test_a_webhook_at_a_closed_port_exits_5_and_cancel_of_the_ended_batch_exits_1(
    dev: DevProcess, requests_file: Path
) -> None:
    batch_id = f"hook-{uuid.uuid4().hex[:8]}"
    closed = f"http://127.0.0.1:{free_port()}/hook"
    r = submit_wait(dev, requests_file, batch_id, closed)
    assert r.returncode == 5, r.stdout + r.stderr
    assert f"durabatch redispatch {batch_id}" in r.stderr
    assert "completed" in r.stdout and "failed" in r.stdout, r.stdout

    r = run_cli("redispatch", batch_id, env=dev.env, timeout=120)
    assert r.returncode == 5, r.stdout + r.stderr
    assert f"handler 0 (webhook {closed}): failed" in r.stdout, r.stdout

    r = run_cli("cancel", batch_id, env=dev.env)
    assert r.returncode == 1, r.stdout + r.stderr
    assert error_lines(r.stderr) == [
        f"error: batch '{batch_id}' has already ended (completed); nothing to cancel"
    ], r.stderr
    assert r.stdout == ""


def test_redispatch_runs_a_failed_webhook_again_once(dev: DevProcess, requests_file: Path) -> None:
    batch_id = f"redo-{uuid.uuid4().hex[:8]}"

    async def scenario() -> tuple[list[subprocess.CompletedProcess[str]], int]:
        async with WebhookReceiver(fail_first=1) as receiver:
            first = await asyncio.to_thread(submit_wait, dev, requests_file, batch_id, receiver.url)
            again = await asyncio.to_thread(run_cli, "redispatch", batch_id, env=dev.env, timeout=120)
            third = await asyncio.to_thread(run_cli, "redispatch", batch_id, env=dev.env, timeout=120)
            return [first, again, third], len(receiver.accepted)

    (first, again, third), accepted = asyncio.run(scenario())
    assert first.returncode == 5, first.stdout + first.stderr
    assert again.returncode == 0, again.stdout + again.stderr
    assert "handler 0 (webhook" in again.stdout and "succeeded" in again.stdout, again.stdout
    assert third.returncode == 1, third.stdout + third.stderr
    [line] = error_lines(third.stderr)
    assert line == f"error: batch '{batch_id}' has closed (no handler failed); nothing to redispatch", line
    assert accepted == 1, "delivered once, by the redispatch"


def test_redispatch_of_an_unknown_batch_exits_3(dev: DevProcess) -> None:
    r = run_cli("redispatch", "nope-404", env=dev.env)
    assert r.returncode == 3, r.stdout + r.stderr
    assert error_lines(r.stderr) == ["error: no batch 'nope-404' (workflow batch-nope-404)"], r.stderr

"""`durabatch.client.BatchClient` against the running `durabatch dev` stack."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from durabatch.client import (
    BatchAlreadyExists,
    BatchClient,
    BatchEnded,
    BatchNotFound,
    InvalidRequestsFile,
    StoreNotConfigured,
)
from durabatch.models import BatchInput, StatusQuery
from durabatch.settings import Settings
from tests.cli.conftest import DevProcess, chat_lines, run_cli


@pytest.fixture
async def client(dev: DevProcess) -> AsyncIterator[BatchClient]:
    settings = Settings(temporal_address=f"127.0.0.1:{dev.temporal_port}", database_url=dev.database_url)
    async with await BatchClient.connect(settings) as c:
        yield c


@pytest.fixture
def slow_provider(dev: DevProcess) -> Iterator[None]:
    url = f"http://127.0.0.1:{dev.emulator_port}/_emulator/config"
    httpx.patch(url, json={"validating_seconds": 120}).raise_for_status()
    yield
    httpx.patch(url, json={"validating_seconds": 0.5}).raise_for_status()


def new_id() -> str:
    return f"py-{uuid.uuid4().hex[:8]}"


async def test_start_wait_with_progress_status_results_list(client: BatchClient, requests_file: Path) -> None:
    batch_id = new_id()
    handle = await client.start(
        batch_id=batch_id,
        provider="openai",
        endpoint="/v1/chat/completions",
        requests_path=requests_file,
        poll_schedule_seconds=[1.0],
    )
    assert handle.batch_id == batch_id and handle.workflow_id == f"batch-{batch_id}"
    seen: list[StatusQuery] = []

    async def progress(status: StatusQuery) -> None:
        seen.append(status)

    summary = await handle.wait(progress=progress, interval=0.2)
    assert summary.status == "completed"
    assert summary.counts.total == summary.counts.succeeded == 12
    assert seen and all(s.batch_id == batch_id for s in seen)
    assert {s.status for s in seen} <= {"pending", "submitted", "in_progress", "finalizing", "completed"}

    status = await client.get(batch_id).status()
    assert status.status == "completed" and status.counts.succeeded == 12
    assert status.shards[0].provider_batch_id in summary.provider_batch_ids

    rows = [row async for row in handle.results()]
    assert [r["custom_id"] for r in rows] == [f"r{i}" for i in range(12)]
    assert {r["outcome"] for r in rows} == {"succeeded"}
    assert all(r["body"]["object"] == "chat.completion" for r in rows)
    assert [row async for row in handle.results(outcome="failed")] == []

    listed = await client.list(provider="openai")
    # visibility lags a little; the summary above is the source of truth, the list may catch up later
    assert all(r.provider == "openai" for r in listed)


async def test_sync_progress_callback_and_inline_requests(client: BatchClient) -> None:
    calls: list[str] = []
    handle = await client.start(
        BatchInput(batch_id=new_id(), provider="openai", endpoint="/v1/chat/completions"),
        requests=chat_lines(3),
        poll_schedule_seconds=[1.0],
    )
    summary = await handle.wait(progress=lambda s: calls.append(s.status), interval=0.2)
    assert summary.counts.succeeded == 3 and calls


async def test_duplicate_start_raises(client: BatchClient) -> None:
    fields: dict[str, Any] = {"batch_id": new_id(), "provider": "openai", "endpoint": "/v1/chat/completions"}
    await client.start(**fields, requests=chat_lines(1), poll_schedule_seconds=[1.0])
    with pytest.raises(BatchAlreadyExists):
        await client.start(**fields, requests=chat_lines(1))
    with pytest.raises(ValueError, match="batch_id"):
        await client.start(provider="openai", endpoint="/v1/chat/completions", requests=chat_lines(1))


async def test_cancel_keeps_partial_results_and_cancelling_again_raises(
    client: BatchClient, requests_file: Path, slow_provider: None
) -> None:
    handle = await client.start(
        batch_id=new_id(),
        provider="openai",
        endpoint="/v1/chat/completions",
        requests_path=str(requests_file),
        poll_schedule_seconds=[1.0],
    )
    await handle.cancel("changed my mind")
    summary = await handle.wait()
    assert summary.status == "cancelled"
    assert summary.counts.cancelled == 12
    rows = [row async for row in handle.results(outcome="cancelled")]
    assert len(rows) == 12
    with pytest.raises(BatchEnded) as ended:
        await handle.cancel()
    assert ended.value.status == "cancelled"


async def test_unknown_batch_raises_not_found(client: BatchClient) -> None:
    handle = client.get("no-such-batch")
    with pytest.raises(BatchNotFound):
        await handle.status()
    with pytest.raises(BatchNotFound):
        await handle.cancel()
    with pytest.raises(BatchNotFound):
        await handle.wait()
    with pytest.raises(BatchNotFound):
        [row async for row in handle.results()]


async def test_invalid_input_is_refused_before_anything_starts(client: BatchClient) -> None:
    batch_id = new_id()
    with pytest.raises(ValueError, match="give exactly one of 'requests'"):
        await client.start(batch_id=batch_id, provider="openai", endpoint="/v1/chat/completions")
    with pytest.raises(ValueError, match="max_age_seconds"):
        await client.start(
            batch_id=batch_id,
            provider="openai",
            endpoint="/v1/chat/completions",
            requests=chat_lines(1),
            max_age_seconds=1e12,
        )
    with pytest.raises(BatchNotFound):
        await client.get(batch_id).status()


async def test_relative_requests_path_is_staged_from_the_current_directory(
    client: BatchClient, requests_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(requests_file.parent)
    handle = await client.start(
        batch_id=new_id(),
        provider="openai",
        endpoint="/v1/chat/completions",
        requests_path=requests_file.name,
        poll_schedule_seconds=[1.0],
    )
    summary = await handle.wait()
    assert summary.status == "completed" and summary.counts.succeeded == 12


async def test_bad_file_is_refused_before_the_batch_exists_and_the_id_stays_free(
    client: BatchClient, tmp_path: Path
) -> None:
    batch_id = new_id()
    lines = chat_lines(4)
    lines[2]["custom_id"] = "r0"
    path = tmp_path / "reqs.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in lines))
    fields: dict[str, Any] = {"batch_id": batch_id, "provider": "openai", "endpoint": "/v1/chat/completions"}
    with pytest.raises(InvalidRequestsFile) as refused:
        await client.start(**fields, requests_path=path)
    assert str(refused.value).startswith(f"{path}:3: field 'custom_id': duplicate custom_id 'r0'")
    assert refused.value.line_no == 3
    with pytest.raises(BatchNotFound):
        await client.get(batch_id).status()
    pool = await client.store()
    assert await pool.fetchval("SELECT count(*) FROM batches WHERE batch_id = $1", batch_id) == 0

    lines[2]["custom_id"] = "r2"
    path.write_text("".join(json.dumps(r) + "\n" for r in lines))
    handle = await client.start(**fields, requests_path=path, poll_schedule_seconds=[1.0])
    summary = await handle.wait()
    assert summary.status == "completed" and summary.counts.succeeded == 4
    with pytest.raises(BatchAlreadyExists):
        await client.start(**fields, requests_path=path)


async def test_connect_without_a_database_or_a_running_stack_is_refused(
    dev: DevProcess, tmp_path: Path
) -> None:
    empty = tmp_path / "no-stack-here"
    settings = Settings(temporal_address=f"127.0.0.1:{dev.temporal_port}", data_dir=empty)
    with pytest.raises(StoreNotConfigured) as refused:
        await BatchClient.connect(settings)
    message = str(refused.value)
    assert str(empty.resolve()) in message and "DURABATCH_DATABASE_URL" in message
    assert not empty.exists(), "no embedded database may be started"


async def test_connect_finds_the_running_stack_of_the_data_dir(dev: DevProcess, requests_file: Path) -> None:
    settings = Settings(temporal_address=f"127.0.0.1:{dev.temporal_port}", data_dir=dev.data_dir)
    async with await BatchClient.connect(settings) as client:
        handle = await client.start(
            batch_id=new_id(),
            provider="openai",
            endpoint="/v1/chat/completions",
            requests_path=requests_file,
            poll_schedule_seconds=[1.0],
        )
        summary = await handle.wait()
        assert summary.counts.succeeded == 12
        rows = [row async for row in handle.results()]
        assert len(rows) == 12


def test_submit_refuses_a_bad_file_before_the_batch_exists(dev: DevProcess, tmp_path: Path) -> None:
    batch_id = new_id()
    lines = [json.dumps(r) for r in chat_lines(3)]
    lines[1] = lines[1].replace('"question 1"', "NaN")
    path = tmp_path / "bad.jsonl"
    path.write_text("\n".join(lines) + "\n")
    args = ["submit", str(path), "--provider", "openai", "--endpoint", "/v1/chat/completions"]
    refused = run_cli(*args, "--batch-id", batch_id, env=dev.env)
    assert refused.returncode == 2, refused
    assert f"{path}:2:" in refused.stderr and "content" in refused.stderr and "NaN" in refused.stderr
    assert "started batch" not in refused.stdout
    missing = run_cli("status", batch_id, env=dev.env)
    assert missing.returncode != 0

    path.write_text("".join(json.dumps(r) + "\n" for r in chat_lines(3)))
    fixed = run_cli(*args, "--batch-id", batch_id, "--poll", "1", "--wait", env=dev.env, timeout=120)
    assert fixed.returncode == 0, fixed
    assert f"started batch {batch_id}" in fixed.stdout


async def test_relative_requests_uri_is_made_absolute_and_the_worker_applies_its_roots(
    client: BatchClient, requests_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The dev stack's worker may read only its data dir and working directory, not pytest's tmp dir.
    monkeypatch.chdir(requests_file.parent)
    handle = await client.start(
        batch_id=new_id(),
        provider="openai",
        endpoint="/v1/chat/completions",
        requests_uri=requests_file.name,
        poll_schedule_seconds=[1.0],
    )
    summary = await handle.wait()
    assert summary.status == "failed"
    reason = summary.failure_reason or ""
    assert str(requests_file.resolve()) in reason and "DURABATCH_REQUESTS_ROOTS" in reason

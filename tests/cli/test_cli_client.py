"""`durabatch.client.BatchClient` against the running `durabatch dev` stack."""

from __future__ import annotations

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
    BatchWorkflowFailed,
)
from durabatch.models import BatchInput, StatusQuery
from durabatch.settings import Settings
from tests.cli.conftest import DevProcess, chat_lines


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
        requests_uri=str(requests_file),
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
        requests_uri=str(requests_file),
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


async def test_invalid_input_fails_the_workflow_with_its_message(client: BatchClient) -> None:
    handle = await client.start(batch_id=new_id(), provider="openai", endpoint="/v1/chat/completions")
    with pytest.raises(BatchWorkflowFailed, match="give exactly one of 'requests'"):
        await handle.wait()

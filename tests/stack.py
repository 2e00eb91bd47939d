"""The real stack several test folders run batches on (workflows, bad_input, secrets, tracing): the
dev server, a migrated database, the emulator over HTTP and an in-process worker on its own task
queue, with the provider settings pointed at the emulator.

A pytest plugin: tests/conftest.py registers it (`pytest_plugins`), so its fixtures (`api_keys`,
`stack`) reach every folder without being imported; tests import only its helpers and types."""

from __future__ import annotations

import gzip
import os
import tempfile
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from temporalio.client import Client, WorkflowFailureError, WorkflowHandle

from activities import ActivityDeps
from durabatch.contract import summary_from_failure
from durabatch.emulator import EmulatorConfig, run_emulator
from durabatch.emulator.server import RunningEmulator
from durabatch.models import BatchInput, BatchSummary, workflow_id_for
from durabatch.providers.registry import build_provider
from durabatch.service import worker_for
from durabatch.settings import Settings
from durabatch.store.pool import Pool

API_KEY = "sk-test-durabatch-0123456789"


class SummaryHandle(WorkflowHandle[Any, BatchSummary]):
    """A batch's handle whose `result()` is its summary, also for a failed batch (whose workflow
    closes as Failed with the summary in the `BatchFailed` failure's details)."""

    async def result(self, *args: Any, **kwargs: Any) -> BatchSummary:
        try:
            return await super().result(*args, **kwargs)
        except WorkflowFailureError as exc:
            summary = summary_from_failure(exc)
            if summary is None:
                raise
            return summary


@dataclass
class Stack:
    client: Client
    pool: Pool
    emulator: RunningEmulator
    settings: Settings
    http: httpx.AsyncClient

    async def admin(self, method: str, path: str, **kwargs: Any) -> Any:
        response = await self.http.request(method, f"{self.emulator.url}/_emulator{path}", **kwargs)
        response.raise_for_status()
        return response.json()

    async def fault(self, **spec: Any) -> Any:
        return await self.admin("POST", "/faults", json=spec)

    async def start(self, **fields: Any) -> WorkflowHandle[Any, BatchSummary]:
        inp = BatchInput(**{"poll_schedule_seconds": [1.0], **fields})
        assert inp.batch_id
        handle = await self.client.start_workflow(
            "BatchWorkflow",
            inp,
            id=workflow_id_for(inp.batch_id),
            task_queue=self.settings.task_queue,
            result_type=BatchSummary,
        )
        return SummaryHandle(
            self.client,
            handle.id,
            run_id=handle.run_id,
            result_run_id=handle.result_run_id,
            first_execution_run_id=handle.first_execution_run_id,
            result_type=BatchSummary,
        )

    async def run(self, *, record: str | None = None, **fields: Any) -> BatchSummary:
        """Start a batch and wait for its summary; with `record`, also replay (and save) its history."""
        handle = await self.start(**fields)
        summary = await handle.result()
        if record:
            await replay_and_record(handle, record)
        return summary


def emulator_config(**overrides: Any) -> EmulatorConfig:
    cfg = EmulatorConfig(
        api_keys=[API_KEY], validating_seconds=0.1, ms_per_request=1.0, finalizing_seconds=0.1
    )
    for k, v in overrides.items():
        setattr(cfg, k, v)
    return cfg


@contextmanager
def environment(values: dict[str, str]) -> Iterator[None]:
    """Set environment variables (the worker reads keys and secrets there), then restore them."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@pytest.fixture(scope="module")
def api_keys() -> Iterator[None]:
    with environment(dict.fromkeys(("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GEMINI_API_KEY"), API_KEY)):
        yield


@asynccontextmanager
async def worker_stack(
    client: Client,
    pool: Pool,
    database_url: str,
    config: EmulatorConfig | None = None,
    *,
    queue_prefix: str = "wf",
    **settings_fields: Any,
) -> AsyncIterator[Stack]:
    """An emulator, settings pointed at it, and an in-process worker on a fresh task queue."""
    import uuid

    async with run_emulator(config or emulator_config()) as emu, httpx.AsyncClient(timeout=30) as http:
        settings = Settings(
            task_queue=f"{queue_prefix}-{uuid.uuid4().hex[:8]}",
            database_url=database_url,
            openai_base_url=f"{emu.url}/v1",
            anthropic_base_url=emu.url,
            gemini_base_url=emu.url,
            # tests write their request files under the temp dir (tmp_path)
            requests_roots=tempfile.gettempdir(),
            **settings_fields,
        )
        deps = ActivityDeps(pool=pool, settings=settings, http=http, provider_factory=build_provider)
        async with worker_for(client, settings, deps):
            yield Stack(client=client, pool=pool, emulator=emu, settings=settings, http=http)


@pytest.fixture(scope="module")
async def stack(
    temporal_client: Client, pool: Pool, database_url: str, api_keys: None
) -> AsyncIterator[Stack]:
    async with worker_stack(temporal_client, pool, database_url) as s:
        yield s


async def outcomes(stack: Stack, batch_id: str) -> dict[str, int]:
    """The batch's result rows counted by outcome."""
    rows = await stack.pool.fetch(
        "SELECT outcome, count(*) AS n FROM results WHERE batch_id = $1 GROUP BY outcome", batch_id
    )
    return {r["outcome"]: r["n"] for r in rows}


async def assert_one_outcome_each(stack: Stack, batch_id: str) -> None:
    """Every staged request of the batch has exactly one result for its current (final) round and
    none beyond it (earlier rounds' rows are the attempts a retry round replaced); the failure
    lists the requests that break it."""
    rows = await stack.pool.fetch(
        """SELECT r.custom_id,
                  count(x.custom_id) FILTER (WHERE x.round = r.round) AS final,
                  count(x.custom_id) FILTER (WHERE x.round > r.round) AS later
             FROM requests r
             LEFT JOIN results x ON x.batch_id = r.batch_id AND x.custom_id = r.custom_id
            WHERE r.batch_id = $1 GROUP BY r.custom_id""",
        batch_id,
    )
    assert rows, f"batch {batch_id} has no staged requests"
    wrong = [dict(r) for r in rows if (r["final"], r["later"]) != (1, 0)]
    assert not wrong, wrong


def chat_requests(n: int, prefix: str = "r", model: str = "gpt-4o-mini") -> list[dict[str, Any]]:
    return [
        {
            "custom_id": f"{prefix}{i}",
            "method": "POST",
            "url": "/v1/chat/completions",
            "body": {"model": model, "messages": [{"role": "user", "content": f"question number {i}"}]},
        }
        for i in range(n)
    ]


def write_jsonl(path: Path, requests: list[dict[str, Any]]) -> str:
    """Big batches go through a file: inline requests are for small batches only."""
    import json

    path.write_text("".join(json.dumps(r) + "\n" for r in requests))
    return str(path)


HISTORIES = Path(__file__).resolve().parent / "histories"


async def replay_and_record(handle: WorkflowHandle[Any, Any], name: str, *, gzip_it: bool = False) -> None:
    """Replay the run's history against today's workflow code (a nondeterminism fails the test),
    and with DURABATCH_RECORD_HISTORIES=1 save it to tests/histories/ for the upgrade gate
    (gzipped when asked: a run of 1,500 events is a megabyte of JSON)."""
    from temporalio.worker import Replayer

    from durabatch.converter import DATA_CONVERTER
    from workflows.batch import BatchWorkflow

    history = await handle.fetch_history()
    await Replayer(workflows=[BatchWorkflow], data_converter=DATA_CONVERTER).replay_workflow(history)
    if os.environ.get("DURABATCH_RECORD_HISTORIES") == "1":
        HISTORIES.mkdir(exist_ok=True)
        # the workflow id is part of what replays (the workflow checks it), so it names the file
        path = HISTORIES / f"{name}@{handle.id}.json"
        if gzip_it:
            path.with_suffix(".json.gz").write_bytes(gzip.compress(history.to_json().encode(), mtime=0))
        else:
            path.write_text(history.to_json())


def poll_events(events: list[Any]) -> list[Any]:
    """The history events of each `poll_shards` call: a local activity's marker (how polls run now)
    or an activity task's scheduled event (histories recorded before the lean-polls patch)."""
    import json as _json

    from temporalio.api.enums.v1 import EventType

    found = []
    for e in events:
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            if e.activity_task_scheduled_event_attributes.activity_type.name == "poll_shards":
                found.append(e)
        elif e.event_type == EventType.EVENT_TYPE_MARKER_RECORDED:
            attrs = e.marker_recorded_event_attributes
            data = attrs.details.get("data")
            if attrs.marker_name == "core_local_activity" and data is not None and data.payloads:
                if _json.loads(data.payloads[0].data).get("activity_type") == "poll_shards":
                    found.append(e)
    return found

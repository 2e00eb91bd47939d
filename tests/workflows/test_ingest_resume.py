"""ingest_results is exactly-once when its heartbeat lags behind what it committed.

Temporal throttles heartbeats, so a retried ingest can resume from a cursor older than its last
committed chunk. The activity runs here (in `ActivityEnvironment`, against the stack's emulator and
PostgreSQL) after a real batch completed, with part of its rows removed as if the crashed attempt
had never written them and a heartbeat cursor from before its last commits.
"""

from __future__ import annotations

import dataclasses
import uuid
from pathlib import Path
from typing import Any

import pytest
from temporalio.testing import ActivityEnvironment

from activities import ActivityDeps
from activities.ingest import IngestActivities
from durabatch.activity_api import IngestInput
from durabatch.models import ProviderBatchRef, ShardState
from durabatch.providers.base import ResultCursor
from durabatch.providers.registry import build_provider
from tests.stack import API_KEY, Stack, assert_one_outcome_each, chat_requests, write_jsonl

N = 5000


async def _served_lines(stack: Stack, provider_batch_id: str) -> list[bytes]:
    headers = {"Authorization": f"Bearer {API_KEY}"}
    batch = (
        await stack.http.get(f"{stack.emulator.url}/v1/batches/{provider_batch_id}", headers=headers)
    ).json()
    content = await stack.http.get(
        f"{stack.emulator.url}/v1/files/{batch['output_file_id']}/content", headers=headers
    )
    return content.content.split(b"\n")[:-1]


async def _rows(stack: Stack, batch_id: str) -> dict[str, tuple[Any, ...]]:
    rows = await stack.pool.fetch(
        """SELECT custom_id, outcome, status_code, line, input_tokens, output_tokens, cost_usd
             FROM results WHERE batch_id = $1""",
        batch_id,
    )
    return {r["custom_id"]: tuple(r) for r in rows}


async def test_resume_from_an_old_heartbeat_writes_each_result_once(
    stack: Stack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import json

    import activities.ingest

    # chunks of 300 rows, so the 1,000 rows to write come in several commits, each heartbeated
    monkeypatch.setattr(activities.ingest, "_CHUNK_ROWS", 300)

    batch_id = uuid.uuid4().hex[:10]
    uri = write_jsonl(tmp_path / "in.jsonl", chat_requests(N))
    summary = await stack.run(
        batch_id=batch_id, provider="openai", endpoint="/v1/chat/completions", requests_uri=uri
    )
    assert summary.status == "completed" and summary.counts.succeeded == N
    before = await _rows(stack, batch_id)
    served = await _served_lines(stack, summary.provider_batch_ids[0])
    assert len(served) == N

    # The crashed attempt committed lines up to 4,000 but its last recorded heartbeat says 1,500;
    # what it never committed (lines after 4,000) is missing.
    heartbeat_at, committed_to = 1500, 4000
    lost = [json.loads(line)["custom_id"] for line in served[committed_to:]]
    await stack.pool.execute(
        "DELETE FROM results WHERE batch_id = $1 AND custom_id = ANY($2)", batch_id, lost
    )
    cursor = ResultCursor(part=0, offset=sum(len(x) + 1 for x in served[:heartbeat_at]), lines=heartbeat_at)

    deps = ActivityDeps(
        pool=stack.pool, settings=stack.settings, http=stack.http, provider_factory=build_provider
    )
    env = ActivityEnvironment()
    env.info = dataclasses.replace(env.info, heartbeat_details=[cursor.model_dump()])
    beats: list[Any] = []
    env.on_heartbeat = lambda *details: beats.append(details[0])
    shard = ShardState(
        shard=0,
        ref=ProviderBatchRef(provider="openai", provider_batch_id=summary.provider_batch_ids[0]),
        state="completed",
    )
    result = await env.run(
        IngestActivities(deps).ingest_results,
        IngestInput(batch_id=batch_id, provider="openai", model="gpt-4o-mini", shard=shard),
    )

    assert result.lines == N - heartbeat_at
    assert result.succeeded == N and result.failed == 0
    assert await _rows(stack, batch_id) == before
    await assert_one_outcome_each(stack, batch_id)
    offsets = [ResultCursor.model_validate(b).offset for b in beats]
    assert len(offsets) == 3, offsets  # after rows 300, 600 and 900; the last 100 end the file
    assert offsets == sorted(offsets) and offsets[0] > cursor.offset

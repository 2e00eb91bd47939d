"""ingest_results' totals: summed while writing on a first attempt, read back on a resumed one.

A real batch runs through the workflow (emulator, PostgreSQL) with successes, a failed request, one
the provider drops (reconciled `missing_result`), an unreadable line and a duplicate; then its
rows are removed and the activity ingests the finished provider batch again in
`ActivityEnvironment`. Its totals must equal what `results.shard_totals` reads from the rows, and
the rows must equal the ones the workflow wrote.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from temporalio.testing import ActivityEnvironment

from activities import ActivityDeps
from activities.ingest import IngestActivities
from durabatch.activity_api import IngestInput, IngestResult
from durabatch.models import ProviderBatchRef, ShardState
from durabatch.providers.registry import build_provider
from durabatch.store import results
from tests.stack import Stack, assert_one_outcome_each, chat_requests, write_jsonl

N = 40
SPECIAL = ["f__fail_400", "m__missing", "u__malformed", "d__duplicate"]


async def _rows(stack: Stack, batch_id: str) -> dict[str, tuple[Any, ...]]:
    rows = await stack.pool.fetch(
        """SELECT custom_id, outcome, status_code, line, error, input_tokens, output_tokens,
                  cached_tokens, cost_usd
             FROM results WHERE batch_id = $1""",
        batch_id,
    )
    return {r["custom_id"]: tuple(r) for r in rows}


async def _ingest(stack: Stack, batch_id: str, provider_batch_id: str) -> IngestResult:
    deps = ActivityDeps(
        pool=stack.pool, settings=stack.settings, http=stack.http, provider_factory=build_provider
    )
    shard = ShardState(
        shard=0,
        ref=ProviderBatchRef(provider="openai", provider_batch_id=provider_batch_id),
        state="completed",
    )
    return await ActivityEnvironment().run(
        IngestActivities(deps).ingest_results,
        IngestInput(batch_id=batch_id, provider="openai", model="gpt-4o-mini", shard=shard),
    )


def _as_totals(result: IngestResult) -> results.ShardTotals:
    return results.ShardTotals(
        succeeded=result.succeeded,
        not_succeeded=result.failed,
        input_tokens=result.input_tokens,
        output_tokens=result.output_tokens,
        cached_tokens=result.cached_tokens,
        cost_usd=result.cost_usd,
    )


async def test_totals_kept_while_writing_equal_the_stored_rows(stack: Stack, tmp_path: Path) -> None:
    batch_id = uuid.uuid4().hex[:10]
    reqs = chat_requests(N) + [dict(chat_requests(1, prefix=p)[0], custom_id=p) for p in SPECIAL]
    uri = write_jsonl(tmp_path / "in.jsonl", reqs)
    # one round: the missing result stays missing (a retry round would move it to round 1)
    summary = await stack.run(
        batch_id=batch_id,
        provider="openai",
        endpoint="/v1/chat/completions",
        requests_uri=uri,
        max_rounds=1,
    )
    assert summary.status == "completed"
    before = await _rows(stack, batch_id)
    assert before["m__missing"][1] == "failed" and before["f__fail_400"][2] == 400

    # as if the shard had never been ingested: a first attempt, nothing written before it
    await stack.pool.execute("DELETE FROM results WHERE batch_id = $1", batch_id)
    first = await _ingest(stack, batch_id, summary.provider_batch_ids[0])
    stored = await results.shard_totals(stack.pool, batch_id, 0, 0)
    assert _as_totals(first) == stored
    assert first.succeeded == N + 1 and first.failed == 3  # the duplicate's first result succeeded
    assert first.cost_usd is not None and first.cost_usd > 0 and first.input_tokens > 0
    assert await _rows(stack, batch_id) == before
    await assert_one_outcome_each(stack, batch_id)

    # a resumed attempt (rows already there) reads its totals from the rows
    removed = await stack.pool.execute(
        "DELETE FROM results WHERE batch_id = $1 AND custom_id IN ('r1', 'r2', 'm__missing')", batch_id
    )
    assert removed == "DELETE 3"
    again = await _ingest(stack, batch_id, summary.provider_batch_ids[0])
    assert _as_totals(again) == stored
    assert await _rows(stack, batch_id) == before

"""The bad-input corpus runs on the shared real stack (tests/stack.py: dev server, PostgreSQL, emulator,
in-process worker), plus a batch that runs through the whole module and must end untouched.

`expect_refused` is the one assertion every refused input makes: the error names the line or the
setting, the batch ends `failed` (summary and `batches` row) within seconds, nothing is staged, and
no provider batch is created (nor, when `nothing_sent`, any request at all made to that provider).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from temporalio.client import WorkflowFailureError, WorkflowHandle
from temporalio.exceptions import ApplicationError

from durabatch.models import BatchSummary, StatusQuery
from tests.helpers import wait_status
from tests.stack import Stack, assert_one_outcome_each

#: a refused input must end the batch at once, not after retries
REFUSAL_SECONDS = 15.0
BACKGROUND_REQUESTS = 30


def new_id() -> str:
    return uuid.uuid4().hex[:10]


def provider_requests(stats: dict[str, Any], provider: str) -> dict[str, int]:
    """The emulator's per-operation request counts for one provider (`openai:files.create`, ...)."""
    return {k: v for k, v in stats["requests"].items() if k.startswith(f"{provider}:")}


async def expect_refused(
    stack: Stack,
    *,
    names: list[str],
    provider: str = "openai",
    nothing_sent: bool = True,
    staged: bool = False,
    **fields: Any,
) -> BatchSummary:
    """Start a batch that must be refused; return its summary after checking the refusal."""
    batch_id = fields.pop("batch_id", None) or new_id()
    fields.setdefault("endpoint", "/v1/chat/completions")
    before = await stack.admin("GET", "/stats")
    started = time.monotonic()
    handle = await stack.start(batch_id=batch_id, provider=provider, **fields)
    summary = await asyncio.wait_for(handle.result(), REFUSAL_SECONDS)
    elapsed = time.monotonic() - started
    after = await stack.admin("GET", "/stats")

    reason = summary.failure_reason or ""
    assert summary.status == "failed", summary
    for name in names:
        assert name in reason, f"{name!r} not in failure reason {reason!r}"
    assert elapsed < REFUSAL_SECONDS

    row = await stack.pool.fetchrow(
        "SELECT status, failure_reason FROM batches WHERE batch_id = $1", batch_id
    )
    assert row is not None, "a refused batch still has a row to end `failed` on"
    assert row["status"] == "failed"
    assert all(name in (row["failure_reason"] or "") for name in names), row["failure_reason"]
    staged_rows = await stack.pool.fetchval("SELECT count(*) FROM requests WHERE batch_id = $1", batch_id)
    if not staged:
        # staging is all or nothing: a refused file leaves no request behind
        assert staged_rows == 0
    assert after["batches_created"] == before["batches_created"], "a provider batch was created"
    if nothing_sent:
        assert provider_requests(after, provider) == provider_requests(before, provider), "a request was sent"
    return summary


async def expect_invalid_start(
    stack: Stack, payload: dict[str, Any], *, names: list[str], batch_id: str
) -> ApplicationError:
    """Start BatchWorkflow with a raw JSON object (what `temporal workflow start --input` sends) that
    must fail the workflow at once with InvalidInput naming the field."""
    before = await stack.admin("GET", "/stats")
    handle = await stack.client.start_workflow(
        "BatchWorkflow", payload, id=f"batch-{batch_id}", task_queue=stack.settings.task_queue
    )
    with pytest.raises(WorkflowFailureError) as info:
        await asyncio.wait_for(handle.result(), REFUSAL_SECONDS)
    cause = info.value.cause
    assert isinstance(cause, ApplicationError), cause
    assert cause.type == "InvalidInput" and cause.non_retryable
    for name in names:
        assert name in cause.message, f"{name!r} not in {cause.message!r}"
    after = await stack.admin("GET", "/stats")
    assert after["batches_created"] == before["batches_created"]
    assert await stack.pool.fetchval("SELECT count(*) FROM requests WHERE batch_id = $1", batch_id) == 0
    return cause


@dataclass
class Background:
    """An Anthropic batch started before the module's first test and held at the emulator in
    `validating` until `finish()`: the bad inputs run while it is in flight."""

    stack: Stack
    batch_id: str
    handle: WorkflowHandle[Any, BatchSummary]
    provider_batch_id: str
    summary: BatchSummary | None = None

    async def finish(self) -> BatchSummary:
        if self.summary is None:
            await self.stack.admin(
                "POST", f"/batches/{self.provider_batch_id}/advance", json={"seconds": 3600}
            )
            self.summary = await asyncio.wait_for(self.handle.result(), 60)
        return self.summary


def _background_requests(n: int) -> list[dict[str, Any]]:
    return [
        {
            "custom_id": f"bg-{i}",
            "params": {
                "model": "claude-3-5-haiku-latest",
                "max_tokens": 32,
                "messages": [{"role": "user", "content": f"background question {i}"}],
            },
        }
        for i in range(n)
    ]


@pytest.fixture(scope="module")
async def background(stack: Stack) -> AsyncIterator[Background]:
    batch_id = f"bg-{new_id()}"
    # Batches copy the emulator's timings when they are created: this one validates for an hour
    # (until `finish()` skips ahead); later batches get the fast timings back.
    saved = await stack.admin("PATCH", "/config", json={})
    await stack.admin("PATCH", "/config", json={"validating_seconds": 3600})
    try:
        handle = await stack.start(
            batch_id=batch_id,
            provider="anthropic",
            endpoint="/v1/messages",
            requests=_background_requests(BACKGROUND_REQUESTS),
        )
        status = await wait_status(handle, lambda s: bool(s.shards and s.shards[0].provider_batch_id))
    finally:
        await stack.admin("PATCH", "/config", json={"validating_seconds": saved["validating_seconds"]})
    provider_batch_id = status.shards[0].provider_batch_id
    assert provider_batch_id is not None
    bg = Background(stack=stack, batch_id=batch_id, handle=handle, provider_batch_id=provider_batch_id)
    yield bg
    await bg.finish()


async def assert_background_untouched(bg: Background) -> None:
    """The in-flight batch kept polling while bad inputs were refused, then completed normally."""
    status = await bg.handle.query("status", result_type=StatusQuery)
    assert status.status in ("submitted", "in_progress") and status.failure_reason is None
    assert status.poll_count >= 1
    before = await bg.stack.admin("GET", "/stats")
    summary = await bg.finish()
    assert summary.status == "completed", summary
    assert summary.counts.total == BACKGROUND_REQUESTS and summary.counts.succeeded == BACKGROUND_REQUESTS
    assert summary.provider_batch_ids == [bg.provider_batch_id]
    after = await bg.stack.admin("GET", "/stats")
    assert after["batches_created"].get("anthropic", 0) == before["batches_created"].get("anthropic", 0)
    await assert_one_outcome_each(bg.stack, bg.batch_id)

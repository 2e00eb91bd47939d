"""One upload per shard: retried creates reuse the input file; a create refused for good deletes it."""

from __future__ import annotations

import uuid

from tests.stack import Stack, assert_one_outcome_each, chat_requests


def new_id() -> str:
    return f"upl-{uuid.uuid4().hex[:10]}"


def files_of(stack: Stack, batch_id: str) -> list[str]:
    """The emulator's OpenAI files uploaded for this batch (their names carry the shard's tag)."""
    return [f.id for f in stack.emulator.state.openai_files.files.values() if batch_id in f.filename]


async def test_a_create_answered_429_twice_reuses_the_one_uploaded_file(stack: Stack) -> None:
    batch_id = new_id()
    await stack.fault(
        fault="http_error", status=429, retry_after=1, provider="openai", operation="batches.create", count=2
    )
    try:
        summary = await stack.run(
            batch_id=batch_id, provider="openai", endpoint="/v1/chat/completions", requests=chat_requests(4)
        )
        faults = await stack.admin("GET", "/faults")
    finally:
        await stack.admin("DELETE", "/faults")
    assert all(f["remaining"] == 0 for f in faults["faults"])  # both 429s were answered
    assert summary.status == "completed" and summary.counts.succeeded == 4
    assert len(files_of(stack, batch_id)) == 1
    await assert_one_outcome_each(stack, batch_id)


async def test_a_create_refused_for_good_deletes_its_uploaded_file(stack: Stack) -> None:
    batch_id = new_id()
    await stack.fault(fault="http_error", status=400, provider="openai", operation="batches.create", count=1)
    try:
        summary = await stack.run(
            batch_id=batch_id, provider="openai", endpoint="/v1/chat/completions", requests=chat_requests(3)
        )
    finally:
        await stack.admin("DELETE", "/faults")
    assert summary.status == "failed" and summary.counts.failed == 3
    assert files_of(stack, batch_id) == []
    await assert_one_outcome_each(stack, batch_id)

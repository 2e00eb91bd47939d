"""The emulator's hostile knobs through the real stack: whatever the provider answers, every request
ends with exactly one outcome and the batch ends."""

from __future__ import annotations

import uuid
from typing import Any

from durabatch.emulator.results import HOSTILE_FIELD
from tests.stack import Stack, assert_one_outcome_each

ENDPOINT = "/v1/chat/completions"


def new_id() -> str:
    return f"hostile-{uuid.uuid4().hex[:10]}"


def requests_for(*custom_ids: str) -> list[dict[str, Any]]:
    return [
        {
            "custom_id": cid,
            "method": "POST",
            "url": ENDPOINT,
            "body": {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": f"say {cid}"}]},
        }
        for cid in custom_ids
    ]


async def rows(stack: Stack, batch_id: str) -> dict[str, Any]:
    found = await stack.pool.fetch(
        """SELECT x.custom_id, x.outcome, x.line, x.error::text AS error
             FROM results x JOIN requests r USING (batch_id, custom_id)
            WHERE x.batch_id = $1 AND x.round = r.round""",
        batch_id,
    )
    return {r["custom_id"]: r for r in found}


async def test_hostile_stray_malformed_and_duplicate_lines_each_leave_one_outcome(stack: Stack) -> None:
    batch_id = new_id()
    ids = ("a__hostile", "b__stray", "c__malformed", "d__duplicate", "e")
    summary = await stack.run(
        batch_id=batch_id, provider="openai", endpoint=ENDPOINT, requests=requests_for(*ids)
    )
    assert summary.status == "completed"
    await assert_one_outcome_each(stack, batch_id)
    stored = await rows(stack, batch_id)
    assert set(stored) == set(ids)  # the stray id never became a row
    assert stored["a__hostile"]["outcome"] == "succeeded"
    assert HOSTILE_FIELD.decode() in stored["a__hostile"]["line"]  # kept byte for byte
    assert stored["b__stray"]["outcome"] == "succeeded"
    assert stored["d__duplicate"]["outcome"] == "succeeded"
    assert stored["c__malformed"]["outcome"] == "failed"
    assert summary.counts.succeeded == 4 and summary.counts.failed == 1


async def test_completed_without_an_output_file_fails_every_request_with_the_reason(stack: Stack) -> None:
    batch_id = new_id()
    await stack.fault(fault="no_output_file", provider="openai", count=1)
    try:
        summary = await stack.run(
            batch_id=batch_id,
            provider="openai",
            endpoint=ENDPOINT,
            requests=requests_for("x", "y", "z"),
            max_rounds=1,
        )
    finally:
        await stack.admin("DELETE", "/faults")
    await assert_one_outcome_each(stack, batch_id)
    stored = await rows(stack, batch_id)
    assert {r["outcome"] for r in stored.values()} == {"failed"}
    assert all("missing" in (r["error"] or "") for r in stored.values())
    assert summary.counts.failed == 3


async def test_results_missing_from_a_round_are_sent_again_and_land(stack: Stack) -> None:
    batch_id = new_id()
    await stack.fault(fault="no_output_file", provider="openai", count=1)
    try:
        summary = await stack.run(
            batch_id=batch_id, provider="openai", endpoint=ENDPOINT, requests=requests_for("x", "y", "z")
        )
    finally:
        await stack.admin("DELETE", "/faults")
    await assert_one_outcome_each(stack, batch_id)
    assert summary.counts.succeeded == 3 and summary.counts.retried == 3
    assert len(summary.provider_batch_ids) == 2


async def test_an_unknown_status_for_ever_ends_at_max_age(stack: Stack) -> None:
    batch_id = new_id()
    await stack.fault(fault="unknown_status", provider="openai", count=1)
    # still running when max age comes, so the provider cancel is accepted and the batch ends
    await stack.admin("PATCH", "/config", json={"validating_seconds": 3600})
    try:
        summary = await stack.run(
            batch_id=batch_id,
            provider="openai",
            endpoint=ENDPOINT,
            requests=requests_for("p", "q"),
            max_age_seconds=6.0,
        )
    finally:
        await stack.admin("PATCH", "/config", json={"validating_seconds": 0.1})
        await stack.admin("DELETE", "/faults")
    assert summary.status == "expired"
    await assert_one_outcome_each(stack, batch_id)
    assert summary.counts.expired == 2

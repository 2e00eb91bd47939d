"""The store's COPY paths: staging requests and idempotent result writes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from durabatch.store import StoreConflict, batches, requests, results
from durabatch.store.pool import Pool


async def _batch(pool: Pool, batch_id: str, n: int) -> None:
    async with pool.acquire() as conn:
        await batches.create_batch(
            conn,
            batch_id=batch_id,
            workflow_id=f"batch-{batch_id}",
            provider="openai",
            endpoint="/v1/chat/completions",
            model="gpt-4o-mini",
            metadata={"team": "x"},
        )
        records = [
            (batch_id, f"r{i}", i, 0, 0, {"messages": [{"role": "user", "content": f"hi {i}"}]}, 40)
            for i in range(n)
        ]
        await requests.copy_requests(conn, records)


def _result(batch_id: str, custom_id: str, outcome: str = "succeeded") -> tuple[object, ...]:
    line = json.dumps({"custom_id": custom_id, "response": {"status_code": 200, "body": {"ok": custom_id}}})
    return (batch_id, custom_id, 0, outcome, 200, line, None, 10, 5, 0, None)


async def test_result_writes_are_exactly_once_by_the_unique_key(pool: Pool) -> None:
    await _batch(pool, "copy2", 10)
    before = await results.shard_progress(pool, "copy2", 0, 0)
    async with pool.acquire() as conn:
        first = await results.write_results(conn, "copy2", [_result("copy2", f"r{i}") for i in range(6)])
        # a chunk that repeats one stored row (a zombie attempt) is refused whole, writing nothing
        with pytest.raises(StoreConflict):
            await results.write_results(conn, "copy2", [_result("copy2", "r7"), _result("copy2", "r1")])
        after = await results.shard_progress(conn, "copy2", 0, 0)
        resolved = await batches.reconcile(
            conn, "copy2", outcome="failed", code="missing", reason="not in output"
        )
        again_resolved = await batches.reconcile(conn, "copy2", outcome="failed", code="missing", reason="x")
        totals = await batches.totals(conn, "copy2")
    assert before.pending == {f"r{i}" for i in range(10)} and not before.done
    assert first == 6
    assert after.pending == {"r6", "r7", "r8", "r9"} and after.done == {f"r{i}" for i in range(6)}
    assert (resolved, again_resolved) == (4, 0)
    assert totals["total"] == 10 and totals["succeeded"] == 6 and totals["failed"] == 4
    assert totals["input_tokens"] == 60
    per_request = await pool.fetchval(
        "SELECT max(c) FROM (SELECT count(*) c FROM results WHERE batch_id = 'copy2' GROUP BY custom_id) s"
    )
    assert per_request == 1


async def test_result_line_is_stored_as_text_without_decoding(pool: Pool) -> None:
    """jsonb refuses \\u0000 and lone surrogates and rounds numbers; the `line` column keeps them."""
    await _batch(pool, "copy3", 1)
    line = '{"custom_id":"r0","response":{"status_code":200,"body":{"t":"a\\u0000b\\ud800","n":1e400,"i":123456789012345678901234567890}}}'
    async with pool.acquire() as conn:
        await results.write_results(
            conn, "copy3", [("copy3", "r0", 0, "succeeded", 200, line, None, 1, 1, 0, None)]
        )
    stored = await pool.fetchval("SELECT line FROM results WHERE batch_id = 'copy3'")
    assert stored == line


async def test_reconcile_of_named_requests_touches_those_only(pool: Pool) -> None:
    """Ingest names the requests its stream left without a result: only those get one, a request
    with a result keeps it, and no request row is rewritten (its outcome is its result row)."""
    await _batch(pool, "copy4", 6)
    async with pool.acquire() as conn:
        await results.write_results(conn, "copy4", [_result("copy4", f"r{i}") for i in range(3)])
        none = await batches.reconcile(
            conn, "copy4", outcome="failed", code="missing", reason="x", shard=0, custom_ids=[]
        )
        named = await batches.reconcile(
            conn,
            "copy4",
            outcome="expired",
            code="batch_expired",
            reason="late",
            shard=0,
            custom_ids=["r0", "r3", "r4", "nobody"],
        )
        rest = await batches.reconcile(conn, "copy4", outcome="failed", code="missing", reason="y")
    assert (none, named, rest) == (0, 2, 1)
    rows = await pool.fetch(
        "SELECT custom_id, outcome, error FROM results WHERE batch_id = 'copy4' ORDER BY custom_id"
    )
    assert [(r["custom_id"], r["outcome"]) for r in rows] == [
        ("r0", "succeeded"),
        ("r1", "succeeded"),
        ("r2", "succeeded"),
        ("r3", "expired"),
        ("r4", "expired"),
        ("r5", "failed"),
    ]
    assert rows[3]["error"] == {"code": "batch_expired", "message": "late"}
    statuses = await pool.fetchval("SELECT array_agg(DISTINCT status) FROM requests WHERE batch_id = 'copy4'")
    assert statuses == ["pending"]


@pytest.mark.parametrize(
    "text",
    [
        '{"model": "m", "temperature": 0.7, "n": 1, "stop": null, "stream": false}',
        '{"big": 100000000000000000000000000000, "tiny": 1e-05, "neg": -0.0, "s": "\\u2028 \\n é"}',
        '{"huge": 1e400}',  # beyond float range: json.loads reads inf where msgspec refuses
        '[{"a": [1, 2.5, "x"]}, {}]',
    ],
)
async def test_jsonb_reads_the_same_objects_as_json_loads(pool: Pool, text: str) -> None:
    value = await pool.fetchval("SELECT $1::text::jsonb", text)
    canonical = await pool.fetchval("SELECT $1::text::jsonb::text", text)
    # compared as text, so that 1 and 1.0 (int and float) differ
    assert json.dumps(value) == json.dumps(json.loads(canonical))


async def test_a_refused_line_closes_the_file_being_staged(pool: Pool, tmp_path: Path) -> None:
    from durabatch.providers.formats import InvalidRequestLine
    from durabatch.requests_file import RequestsValidator
    from durabatch.staging import file_lines, stage_lines

    path = tmp_path / "bad.jsonl"
    path.write_text('{"not": "a request"}\n' * 3)
    lines = file_lines(path)
    async with pool.acquire() as conn, conn.transaction():
        with pytest.raises(InvalidRequestLine):
            await stage_lines(
                conn,
                "closing-1",
                RequestsValidator("openai", "/v1/chat/completions", None),
                lines,
                source=str(path),
            )
    # the generator was closed (its `with` closed the file now, not at garbage collection)
    with pytest.raises(StopAsyncIteration):
        await anext(lines)

"""The official openai SDK drives a whole batch lifecycle against the emulator."""

from __future__ import annotations

import json

import openai
import pytest
from openai.types import Batch, BatchRequestCounts

from durabatch.emulator import expected_chat_response
from durabatch.emulator.server import RunningEmulator
from tests.emulator.helpers import KEY, chat_line, jsonl
from tests.helpers import eventually


def counts(b: Batch) -> BatchRequestCounts:
    assert b.request_counts is not None
    return b.request_counts


@pytest.fixture
async def client(emu: RunningEmulator):
    c = openai.AsyncOpenAI(api_key=KEY, base_url=emu.url + "/v1", max_retries=0)
    yield c
    await c.close()


async def _create(client: openai.AsyncOpenAI, lines, metadata=None):
    f = await client.files.create(file=("in.jsonl", jsonl(lines)), purpose="batch")
    assert f.purpose == "batch" and f.status == "processed"
    return await client.batches.create(
        input_file_id=f.id, endpoint="/v1/chat/completions", completion_window="24h", metadata=metadata
    )


async def test_lifecycle_results_match_deterministic_content(client: openai.AsyncOpenAI) -> None:
    lines = [chat_line(f"r{i}", f"question number {i}") for i in range(20)]
    lines.append(chat_line("bad__fail_400"))
    batch = await _create(client, lines, metadata={"job": "sdk-test"})
    assert batch.status == "validating"
    assert batch.request_counts is not None and batch.request_counts.total == 0

    done = await eventually(lambda: client.batches.retrieve(batch.id), lambda b: b.status == "completed")
    assert done.request_counts is not None
    assert (done.request_counts.total, counts(done).completed, counts(done).failed) == (
        21,
        20,
        1,
    )
    assert done.in_progress_at and done.finalizing_at and done.completed_at
    assert done.output_file_id and done.error_file_id
    assert done.usage is not None and done.usage.output_tokens == 60

    out = (await client.files.content(str(done.output_file_id))).content
    results = {}
    for raw in out.splitlines():
        line = json.loads(raw)
        assert line["error"] is None and line["response"]["status_code"] == 200
        results[line["custom_id"]] = line["response"]["body"]
    assert len(results) == 20
    for src in lines[:20]:
        body = results[src["custom_id"]]
        assert body == expected_chat_response("openai", "/v1/chat/completions", src["body"])
        openai.types.chat.ChatCompletion.model_validate(body)

    err = [json.loads(x) for x in (await client.files.content(str(done.error_file_id))).content.splitlines()]
    assert [e["custom_id"] for e in err] == ["bad__fail_400"]
    assert err[0]["error"] is None and err[0]["response"]["status_code"] == 400
    assert err[0]["response"]["body"]["error"]["type"] == "invalid_request_error"

    info = await client.files.retrieve(done.output_file_id)
    assert info.purpose == "batch_output" and info.bytes == len(out)


async def test_cancel_gives_partial_results(client: openai.AsyncOpenAI, emu: RunningEmulator) -> None:
    emu.state.config.ms_per_request = 20.0
    batch = await _create(client, [chat_line(f"c{i}") for i in range(200)])
    await eventually(
        lambda: client.batches.retrieve(batch.id),
        lambda b: b.status == "in_progress" and counts(b).completed > 0,
    )
    cancelling = await client.batches.cancel(batch.id)
    assert cancelling.status == "cancelling" and cancelling.cancelling_at is not None
    done = await eventually(lambda: client.batches.retrieve(batch.id), lambda b: b.status == "cancelled")
    assert 0 < counts(done).completed < 200
    assert done.output_file_id and done.error_file_id
    err = (await client.files.content(str(done.error_file_id))).content.splitlines()
    codes = {json.loads(x)["error"]["code"] for x in err}
    assert codes == {"batch_cancelled"}
    assert len(err) + counts(done).completed == 200
    with pytest.raises(openai.ConflictError):
        await client.batches.cancel(batch.id)


async def test_expiry_with_partial_results(client: openai.AsyncOpenAI, emu: RunningEmulator) -> None:
    emu.state.config.ms_per_request = 10.0
    emu.state.config.expire_after_seconds = 0.5
    batch = await _create(client, [chat_line(f"e{i}") for i in range(200)])
    done = await eventually(lambda: client.batches.retrieve(batch.id), lambda b: b.status == "expired")
    assert done.expired_at is not None
    assert 0 < counts(done).completed < 200
    assert counts(done).failed == 200 - counts(done).completed
    err = [json.loads(x) for x in (await client.files.content(str(done.error_file_id))).content.splitlines()]
    assert {e["error"]["code"] for e in err} == {"batch_expired"}
    assert err[0]["response"] is None
    out = (await client.files.content(str(done.output_file_id))).content.splitlines()
    assert len(out) == counts(done).completed


async def test_list_pagination(client: openai.AsyncOpenAI) -> None:
    f = await client.files.create(file=("in.jsonl", jsonl([chat_line("x")])), purpose="batch")
    ids = []
    for _ in range(7):
        b = await client.batches.create(
            input_file_id=f.id, endpoint="/v1/chat/completions", completion_window="24h"
        )
        ids.append(b.id)
    page = await client.batches.list(limit=3)
    assert [b.id for b in page.data] == ids[::-1][:3] and page.has_more
    seen = [b.id async for b in client.batches.list(limit=3)]
    assert seen == ids[::-1]


async def test_validation_failure_reports_lines(client: openai.AsyncOpenAI) -> None:
    lines = jsonl([chat_line("a"), chat_line("a"), {**chat_line("m"), "url": "/v1/embeddings"}])
    lines += b"{not json\n" + jsonl([chat_line("z", model="gpt-4o")])
    f = await client.files.create(file=("in.jsonl", lines), purpose="batch")
    b = await client.batches.create(
        input_file_id=f.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    done = await eventually(lambda: client.batches.retrieve(b.id), lambda x: x.status == "failed")
    assert done.errors is not None and done.failed_at is not None
    got = [(e.code, e.line) for e in done.errors.data or []]
    assert got == [
        ("duplicate_custom_id", 2),
        ("url_mismatch", 3),
        ("invalid_json_line", 4),
        ("model_mismatch", 5),
    ]
    assert done.output_file_id is None and done.error_file_id is None


@pytest.mark.parametrize(
    ("limit", "code"),
    [
        ({"openai_max_requests": 2}, "too_many_tasks"),
        ({"openai_max_batch_file_bytes": 100}, "file_too_large"),
    ],
)
async def test_over_the_limits_fails_the_batch(
    client: openai.AsyncOpenAI, emu: RunningEmulator, limit: dict[str, int], code: str
) -> None:
    for name, value in limit.items():
        setattr(emu.state.config, name, value)
    b = await _create(client, [chat_line("a"), chat_line("b"), chat_line("c")])
    done = await eventually(lambda: client.batches.retrieve(b.id), lambda x: x.status == "failed")
    assert done.errors is not None
    assert [e.code for e in done.errors.data or []] == [code]
    assert counts(done).total == 0 and done.output_file_id is None


async def test_files_retrieve_and_delete(client: openai.AsyncOpenAI) -> None:
    f = await client.files.create(file=("in.jsonl", jsonl([chat_line("a")])), purpose="batch")
    assert (await client.files.retrieve(f.id)).bytes == f.bytes
    deleted = await client.files.delete(f.id)
    assert deleted.deleted and deleted.id == f.id
    with pytest.raises(openai.NotFoundError):
        await client.files.retrieve(f.id)


async def test_realtime_endpoints(client: openai.AsyncOpenAI) -> None:
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi there"}]}
    r = await client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hi there"}]
    )
    assert (
        r.choices[0].message.content
        == expected_chat_response("openai", "/v1/chat/completions", body)["choices"][0]["message"]["content"]
    )
    e = await client.embeddings.create(model="text-embedding-3-small", input=["a", "b"])
    assert len(e.data) == 2 and len(e.data[0].embedding) == 8


async def test_wrong_key_is_401(emu: RunningEmulator) -> None:
    c = openai.AsyncOpenAI(api_key="sk-wrong-key-123456", base_url=emu.url + "/v1", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as exc:
        await c.batches.list()
    await c.close()
    assert exc.value.code == "invalid_api_key"
    assert exc.value.request_id and exc.value.request_id.startswith("req_")

"""The official google-genai SDK drives Gemini batch mode against the emulator."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
from google import genai
from google.genai import errors as genai_errors
from google.genai import types

from durabatch.emulator import expected_chat_response
from durabatch.emulator.server import RunningEmulator
from tests.emulator.helpers import KEY
from tests.helpers import eventually

MODEL = "gemini-2.5-flash"


def make_client(emu: RunningEmulator, key: str = KEY, api_version: str | None = None) -> genai.Client:
    return genai.Client(
        api_key=key, http_options=types.HttpOptions(base_url=emu.url + "/", api_version=api_version)
    )


# The SDK's default version is v1 (whose paths OpenAI shares); the REST reference uses v1beta.
@pytest.fixture(params=[None, "v1beta"], ids=["sdk-default-v1", "v1beta"])
def client(emu: RunningEmulator, request: pytest.FixtureRequest) -> genai.Client:
    return make_client(emu, api_version=request.param)


def contents(text: str) -> list[dict[str, Any]]:
    return [{"role": "user", "parts": [{"text": text}]}]


async def _wait_done(client: genai.Client, name: str) -> types.BatchJob:
    return await eventually(lambda: client.aio.batches.get(name=name), lambda j: bool(j.done))


async def test_inline_lifecycle(client: genai.Client) -> None:
    src = [
        types.InlinedRequest(contents=contents(f"question {i}"), metadata={"key": f"k{i}"}) for i in range(5)
    ]
    src.append(types.InlinedRequest(contents=contents("x"), metadata={"key": "bad__fail_400"}))
    job = await client.aio.batches.create(model=MODEL, src=src, config={"display_name": "inline-job"})
    assert job.name and job.name.startswith("batches/") and job.state == types.JobState.JOB_STATE_PENDING
    done = await _wait_done(client, job.name)
    assert done.state == types.JobState.JOB_STATE_SUCCEEDED and done.end_time is not None
    assert done.dest is not None and done.dest.inlined_responses is not None
    responses = done.dest.inlined_responses
    assert len(responses) == 6
    for i, r in enumerate(responses[:5]):
        assert r.metadata == {"key": f"k{i}"}
        want = expected_chat_response(
            "gemini", "", {"contents": contents(f"question {i}")}, model="models/" + MODEL
        )
        assert (
            r.response is not None and r.response.text == want["candidates"][0]["content"]["parts"][0]["text"]
        )
        assert r.response.usage_metadata is not None
        assert r.response.usage_metadata.prompt_token_count == want["usageMetadata"]["promptTokenCount"]
    assert responses[5].error is not None and responses[5].error.code == 400


async def test_file_lifecycle_results_in_input_order(client: genai.Client) -> None:
    lines: list[dict[str, Any]] = [
        {"key": f"r{i}", "request": {"contents": contents(f"q {i}")}} for i in range(8)
    ]
    lines.append({"key": "oops__fail_500", "request": {"contents": contents("z")}})
    data = b"".join(json.dumps(x).encode() + b"\n" for x in lines)
    uploaded = await client.aio.files.upload(
        file=io.BytesIO(data), config={"mime_type": "application/jsonl", "display_name": "in.jsonl"}
    )
    assert uploaded.name and uploaded.size_bytes == len(data)
    job = await client.aio.batches.create(model=MODEL, src=uploaded.name, config={"display_name": "file-job"})
    assert job.name is not None
    done = await _wait_done(client, job.name)
    assert done.state == types.JobState.JOB_STATE_SUCCEEDED
    assert done.dest is not None and done.dest.file_name is not None
    raw = await client.aio.files.download(file=done.dest.file_name)
    out = [json.loads(x) for x in raw.splitlines()]
    assert [o["key"] for o in out] == [x["key"] for x in lines]
    assert out[0]["response"] == expected_chat_response(
        "gemini", "", lines[0]["request"], model="models/" + MODEL
    )
    types.GenerateContentResponse.model_validate(out[0]["response"])
    assert out[-1]["error"] == {
        "code": 500,
        "message": out[-1]["error"]["message"],
        "status": "INTERNAL",
    }


async def test_cancel(client: genai.Client, emu: RunningEmulator) -> None:
    emu.state.config.ms_per_request = 20.0
    src = [types.InlinedRequest(contents=contents(f"c{i}"), metadata={"key": f"c{i}"}) for i in range(100)]
    job = await client.aio.batches.create(model=MODEL, src=src)
    name = job.name
    assert name is not None
    await eventually(
        lambda: client.aio.batches.get(name=name), lambda j: j.state == types.JobState.JOB_STATE_RUNNING
    )
    await client.aio.batches.cancel(name=name)
    done = await _wait_done(client, name)
    assert done.state == types.JobState.JOB_STATE_CANCELLED


async def test_expiry_with_partial_results(client: genai.Client, emu: RunningEmulator) -> None:
    emu.state.config.ms_per_request = 10.0
    emu.state.config.expire_after_seconds = 0.4
    src = [types.InlinedRequest(contents=contents(f"e{i}"), metadata={"key": f"e{i}"}) for i in range(100)]
    job = await client.aio.batches.create(model=MODEL, src=src)
    assert job.name is not None
    done = await _wait_done(client, job.name)
    assert done.state == types.JobState.JOB_STATE_EXPIRED
    assert done.dest is not None and done.dest.inlined_responses is not None
    assert 0 < len(done.dest.inlined_responses) < 100


async def test_list_pagination(client: genai.Client) -> None:
    names = []
    for i in range(5):
        job = await client.aio.batches.create(
            model=MODEL, src=[types.InlinedRequest(contents=contents("a"))], config={"display_name": f"j{i}"}
        )
        names.append(job.name)
    pager = await client.aio.batches.list(config={"page_size": 2})
    assert [j.name for j in pager.page] == names[::-1][:2]
    seen = [j.name async for j in pager]
    assert seen == names[::-1]


async def test_generate_content(client: genai.Client) -> None:
    r = await client.aio.models.generate_content(model=MODEL, contents="hello gemini")
    want = expected_chat_response(
        "gemini", "", {"contents": contents("hello gemini")}, model="models/" + MODEL
    )
    assert r.text == want["candidates"][0]["content"]["parts"][0]["text"]


async def test_wrong_key_is_401(emu: RunningEmulator) -> None:
    c = make_client(emu, key="wrong")
    with pytest.raises(genai_errors.ClientError) as exc:
        await c.aio.batches.get(name="batches/abc")
    assert exc.value.code == 401 and exc.value.status == "UNAUTHENTICATED"

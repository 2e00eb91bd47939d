"""Request lines standard JSON cannot carry, and hostile or flaky `requests_uri` sources.

Each refused line is named by its line number and field, ends the batch within seconds, and is
tried once: the history shows a single attempt of `stage_requests`.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from durabatch.models import workflow_id_for
from tests.bad_input.conftest import expect_refused, new_id
from tests.conftest import free_port
from tests.stack import Stack, chat_requests

ENDPOINT = "/v1/chat/completions"


def chat_line(i: int, content: str = '"question"') -> str:
    """One OpenAI chat line as JSON text, with `content` pasted in raw (so it may be hostile)."""
    return (
        f'{{"custom_id": "r{i}", "method": "POST", "url": "{ENDPOINT}", '
        f'"body": {{"model": "gpt-4o-mini", "messages": [{{"role": "user", "content": {content}}}]}}}}'
    )


def write(path: Path, lines: list[str]) -> str:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(path)


async def stage_attempts(stack: Stack, batch_id: str) -> list[int]:
    """The attempt number of each started `stage_requests` activity in the batch's history."""
    history = await stack.client.get_workflow_handle(workflow_id_for(batch_id)).fetch_history()
    scheduled: set[int] = set()
    attempts: list[int] = []
    for event in history.events:
        if event.HasField("activity_task_scheduled_event_attributes"):
            if event.activity_task_scheduled_event_attributes.activity_type.name == "stage_requests":
                scheduled.add(event.event_id)
        elif event.HasField("activity_task_started_event_attributes"):
            attrs = event.activity_task_started_event_attributes
            if attrs.scheduled_event_id in scheduled:
                attempts.append(attrs.attempt)
    return attempts


HOSTILE = [
    pytest.param('"a" , "x": NaN', ["line 2", "body.messages[0].x", "NaN is not standard JSON"], id="nan"),
    pytest.param('"a", "x": Infinity', ["line 2", "body.messages[0].x", "Infinity"], id="infinity"),
    pytest.param('"a", "x": -Infinity', ["line 2", "body.messages[0].x", "-Infinity"], id="minus-infinity"),
    pytest.param('"a", "x": 1e400', ["line 2", "body.messages[0].x", "1e400 is out of range"], id="1e400"),
    pytest.param('"\\ud800 alone"', ["line 2", "body.messages[0].content", "lone surrogate"], id="surrogate"),
    pytest.param('"nul \\u0000 here"', ["line 2", "body.messages[0].content", "NUL"], id="nul-in-body"),
]


@pytest.mark.parametrize(("content", "names"), HOSTILE)
async def test_unsendable_value_refused_naming_line_and_field(
    stack: Stack, tmp_path: Path, content: str, names: list[str]
) -> None:
    batch_id = new_id()
    uri = write(
        tmp_path / "in.jsonl", [chat_line(0, '"fine"'), chat_line(1, content), chat_line(2, '"fine"')]
    )
    summary = await expect_refused(stack, batch_id=batch_id, requests_uri=uri, names=names)
    assert "column" not in (summary.failure_reason or "")
    assert await stage_attempts(stack, batch_id) == [1], "a refused line must not be retried"


async def test_nul_in_custom_id_refused(stack: Stack, tmp_path: Path) -> None:
    batch_id = new_id()
    bad = chat_line(1).replace('"r1"', '"r\\u00001"')
    uri = write(tmp_path / "in.jsonl", [chat_line(0), chat_line(2), bad])
    await expect_refused(stack, batch_id=batch_id, requests_uri=uri, names=["line 3", "'custom_id'", "NUL"])
    assert await stage_attempts(stack, batch_id) == [1]


async def test_json_error_names_one_line_number(stack: Stack, tmp_path: Path) -> None:
    uri = write(tmp_path / "in.jsonl", [chat_line(0), chat_line(1), '{"custom_id": "r2",'])
    summary = await expect_refused(stack, requests_uri=uri, names=["line 3", "not valid JSON"])
    assert "line 1" not in (summary.failure_reason or "")


async def test_model_conflict_refused(stack: Stack, tmp_path: Path) -> None:
    lines = [json.dumps(r) for r in chat_requests(3)]
    lines[2] = lines[2].replace("gpt-4o-mini", "gpt-4o")
    uri = write(tmp_path / "in.jsonl", lines)
    await expect_refused(stack, requests_uri=uri, names=["line 3", "'model'", "'gpt-4o'", "one model"])


async def test_gemini_without_a_model_refused(stack: Stack, tmp_path: Path) -> None:
    line = {"key": "k1", "request": {"contents": [{"parts": [{"text": "hello"}]}]}}
    uri = write(tmp_path / "in.jsonl", [json.dumps(line)])
    await expect_refused(
        stack, provider="gemini", endpoint="generateContent", requests_uri=uri, names=["model", "Gemini"]
    )


async def test_requests_uri_outside_the_roots_refused(stack: Stack) -> None:
    assert not Path("/etc/passwd").resolve().is_relative_to(Path(tempfile.gettempdir()).resolve())
    batch_id = new_id()
    await expect_refused(
        stack,
        batch_id=batch_id,
        requests_uri="/etc/passwd",
        names=["/etc/passwd", "DURABATCH_REQUESTS_ROOTS"],
    )
    assert await stage_attempts(stack, batch_id) == [1]


async def test_symlink_out_of_the_roots_refused(stack: Stack, tmp_path: Path) -> None:
    link = tmp_path / "innocent.jsonl"
    os.symlink("/etc/passwd", link)
    await expect_refused(stack, requests_uri=str(link), names=["DURABATCH_REQUESTS_ROOTS"])


class FlakyServer:
    """Serves one JSONL file over HTTP, answering `fail_first` requests with `fail_status` first."""

    def __init__(self, body: bytes, fail_status: int, fail_first: int) -> None:
        self.body = body
        self.fail_status = fail_status
        self.fail_first = fail_first
        self.hits = 0

    async def handle(self, request: web.Request) -> web.Response:
        self.hits += 1
        if self.hits <= self.fail_first:
            return web.Response(status=self.fail_status, headers={"Retry-After": "1"}, text="busy")
        return web.Response(body=self.body, content_type="application/jsonl")


@pytest.fixture
async def serve() -> AsyncIterator[Any]:
    runners: list[web.AppRunner] = []

    async def start(server: FlakyServer) -> str:
        app = web.Application()
        app.router.add_get("/reqs.jsonl", server.handle)
        runner = web.AppRunner(app)
        await runner.setup()
        port = free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        runners.append(runner)
        return f"http://127.0.0.1:{port}/reqs.jsonl"

    yield start
    for runner in runners:
        await runner.cleanup()


async def test_http_requests_uri_503_twice_then_200_stages(stack: Stack, serve: Any) -> None:
    body = ("\n".join(json.dumps(r) for r in chat_requests(4)) + "\n").encode()
    server = FlakyServer(body, fail_status=503, fail_first=2)
    url = await serve(server)
    batch_id = new_id()
    handle = await stack.start(batch_id=batch_id, provider="openai", endpoint=ENDPOINT, requests_uri=url)
    summary = await handle.result()
    assert summary.status == "completed", summary
    assert summary.counts.succeeded == 4
    assert server.hits == 3
    assert await stage_attempts(stack, batch_id) == [3]


async def test_http_requests_uri_404_is_not_retried(stack: Stack, serve: Any) -> None:
    server = FlakyServer(b"", fail_status=404, fail_first=100)
    url = await serve(server)
    batch_id = new_id()
    await expect_refused(stack, batch_id=batch_id, requests_uri=url, names=[url, "HTTP 404", "no such file"])
    assert server.hits == 1
    assert await stage_attempts(stack, batch_id) == [1]


async def test_a_bad_line_after_several_copied_chunks_leaves_nothing_staged(
    stack: Stack, tmp_path: Path
) -> None:
    # Chunks of 2,000 rows are already copied (one still in flight) when line 4,501 is refused.
    batch_id = new_id()
    lines = [chat_line(i) for i in range(4500)] + [chat_line(4500, "NaN")]
    uri = write(tmp_path / "in.jsonl", lines)
    await expect_refused(
        stack, batch_id=batch_id, requests_uri=uri, names=["line 4501", "body.messages[0].content", "NaN"]
    )
    assert await stage_attempts(stack, batch_id) == [1]

"""Results are stored as the provider wrote them, and no line can wedge ingest.

The emulator's answers are deterministic echoes; to get content that PostgreSQL's jsonb refuses
(`\\u0000`, a lone surrogate) or cannot keep exactly (1e400, a 30-digit integer), the test rewrites
the output file the emulator serves, in the emulator's own process, before the batch completes.
The batch then runs through the real stack: the dev server, PostgreSQL and the emulator over HTTP.
"""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

import pytest

from durabatch.client import BatchClient
from durabatch.emulator import expected_chat_response
from durabatch.emulator.files import StoredFile
from tests.stack import API_KEY, Stack, assert_one_outcome_each, chat_requests

#: raw JSON text, spliced into the served line as is: every escape reaches the client undecoded
HOSTILE_CONTENT = '"nul:\\u0000 lone:\\ud800 pair:\\ud83d\\ude00 quote:\\" ctl:\\u001f"'
HOSTILE_NUMBERS = '"x_score":1e400,"x_big":123456789012345678901234567890,"x_neg_zero":-0.0,"x_exp":1E+2'


def _hostile(line: bytes) -> Iterator[bytes]:
    """The served lines for one emulator output line."""
    record = json.loads(line)
    cid = record["custom_id"]
    if cid == "hostile":
        record["response"]["body"]["choices"][0]["message"]["content"] = "@@CONTENT@@"
        record["response"]["body"]["x_numbers"] = "@@NUMBERS@@"
        text = json.dumps(record, separators=(",", ":"))
        text = text.replace('"@@CONTENT@@"', HOSTILE_CONTENT)
        yield text.replace('"x_numbers":"@@NUMBERS@@"', HOSTILE_NUMBERS).encode() + b"\n"
        return
    if cid == "usage":
        text = json.dumps(record, separators=(",", ":"))
        usage = json.dumps(record["response"]["body"]["usage"], separators=(",", ":"))
        absurd = (
            '{"prompt_tokens":1e400,"completion_tokens":123456789012345678901234567890,"total_tokens":"x"}'
        )
        yield text.replace(usage, absurd).encode() + b"\n"
        return
    if cid == "broken":
        yield line[: len(line) // 2] + b"\n"  # names its custom_id, then stops: not JSON
        return
    yield line
    if cid == "dup":
        record["response"]["body"]["choices"][0]["message"]["content"] = "a second, different answer"
        yield json.dumps(record, separators=(",", ":")).encode() + b"\n"
    if cid == "r0":
        yield b"this line is not JSON and names no request\n"
        stray = {**record, "custom_id": "nobody-asked"}
        yield json.dumps(stray, separators=(",", ":")).encode() + b"\n"


def _rewrite(lines: Callable[[], Iterable[bytes]]) -> Callable[[], Iterable[bytes]]:
    def served() -> Iterator[bytes]:
        for line in lines():
            yield from _hostile(line)

    return served


@pytest.fixture
def hostile_output(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    files = stack.emulator.state.openai_files
    original = files.add

    def add(f: StoredFile) -> StoredFile:
        if f.purpose == "batch_output" and f.lines is not None and f.filename.endswith("_output.jsonl"):
            f.lines = _rewrite(f.lines)
        return original(f)

    monkeypatch.setattr(files, "add", add)


async def _served(stack: Stack, provider_batch_id: str) -> list[str]:
    headers = {"Authorization": f"Bearer {API_KEY}"}
    batch = (
        await stack.http.get(f"{stack.emulator.url}/v1/batches/{provider_batch_id}", headers=headers)
    ).json()
    content = await stack.http.get(
        f"{stack.emulator.url}/v1/files/{batch['output_file_id']}/content", headers=headers
    )
    return content.content.decode().split("\n")[:-1]


def _cli_results(stack: Stack, batch_id: str, *args: str) -> str:
    cli = Path(sys.executable).parent / "durabatch"
    env = {**os.environ, "DURABATCH_DATABASE_URL": stack.settings.database_url}
    done = subprocess.run(
        [str(cli), "results", batch_id, *args], env=env, capture_output=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.decode("utf-8")


async def test_hostile_results_are_stored_exactly_and_never_wedge(stack: Stack, hostile_output: None) -> None:
    batch_id = uuid.uuid4().hex[:10]
    requests = chat_requests(7)
    for request, name in zip(requests[3:], ("hostile", "dup", "broken", "usage"), strict=True):
        request["custom_id"] = name
    summary = await stack.run(
        batch_id=batch_id, provider="openai", endpoint="/v1/chat/completions", requests=requests
    )

    assert summary.status == "completed"
    assert (summary.counts.succeeded, summary.counts.failed) == (6, 1)
    await assert_one_outcome_each(stack, batch_id)
    served = await _served(stack, summary.provider_batch_ids[0])
    first: dict[str, str] = {}
    for line in served:
        if line.startswith("{") and line.endswith("}"):
            first.setdefault(json.loads(line)["custom_id"], line)
    assert HOSTILE_CONTENT in first["hostile"] and HOSTILE_NUMBERS in first["hostile"]

    # `durabatch results`: each line the provider's own, byte for byte (the first of two for "dup")
    ours = _cli_results(stack, batch_id).split("\n")[:-1]
    by_id = {json.loads(line)["custom_id"]: line for line in ours}
    assert sorted(by_id) == sorted(r["custom_id"] for r in requests)
    for cid in ("r0", "r1", "r2", "hostile", "dup", "usage"):
        assert by_id[cid] == first[cid]
    broken = json.loads(by_id["broken"])
    assert broken["error"]["code"] == "invalid_result_line"
    assert "not JSON" in broken["error"]["message"]

    # BatchHandle.results(): the body decoded without loss
    async with BatchClient(stack.client, stack.settings, stack.settings.database_url) as client:
        rows = {row["custom_id"]: row async for row in client.get(batch_id).results()}
    hostile = rows["hostile"]
    assert hostile["line"] == first["hostile"]
    body: dict[str, Any] = hostile["body"]
    assert body["choices"][0]["message"]["content"] == 'nul:\x00 lone:\ud800 pair:\U0001f600 quote:" ctl:\x1f'
    assert body["x_score"] == Decimal("1e400")
    assert body["x_big"] == 123456789012345678901234567890
    assert (
        body
        == json.loads(first["hostile"], parse_float=lambda s: Decimal(s) if s == "1e400" else float(s))[
            "response"
        ]["body"]
    )
    assert rows["dup"]["body"]["choices"][0]["message"]["content"] != "a second, different answer"
    assert rows["broken"]["outcome"] == "failed" and rows["broken"]["line"] is None
    assert "nobody-asked" not in rows
    # token counts no column can hold are counted 0 rather than stopping the ingest
    assert (rows["usage"]["outcome"], rows["usage"]["input_tokens"], rows["usage"]["output_tokens"]) == (
        "succeeded",
        0,
        0,
    )
    assert rows["usage"]["body"]["usage"]["prompt_tokens"] == Decimal("1e400")

    # CSV: the body column is the provider's body text, unchanged
    csv_rows = {
        r["custom_id"]: r
        for r in csv.DictReader(io.StringIO(_cli_results(stack, batch_id, "--format", "csv")))
    }
    assert csv_rows["r1"]["body"] == json.dumps(
        json.loads(first["r1"])["response"]["body"], separators=(",", ":")
    )
    assert first["hostile"].endswith('"body":' + csv_rows["hostile"]["body"] + '},"error":null}')
    assert HOSTILE_CONTENT in csv_rows["hostile"]["body"] and HOSTILE_NUMBERS in csv_rows["hostile"]["body"]


async def test_anthropic_lines_and_gemini_inline_responses_read_back(stack: Stack) -> None:
    """Anthropic's body sits at result.message; Gemini's inline responses arrive in the operation, not
    as lines of a file, and are stored as the line its responses file would have had."""
    anthropic: list[dict[str, Any]] = [
        {
            "custom_id": f"a{i}",
            "params": {
                "model": "claude-haiku-4-5",
                "max_tokens": 64,
                "messages": [{"role": "user", "content": f"hi {i}"}],
            },
        }
        for i in range(3)
    ]
    gemini: list[dict[str, Any]] = [
        {"key": f"g{i}", "request": {"contents": [{"role": "user", "parts": [{"text": f"hello {i}"}]}]}}
        for i in range(3)
    ]
    runs: list[tuple[Literal["anthropic", "gemini"], str, str | None, list[dict[str, Any]], str]] = [
        ("anthropic", "/v1/messages", None, anthropic, "params"),
        ("gemini", "generateContent", "gemini-2.5-flash", gemini, "request"),
    ]
    for provider, endpoint, model, requests, body_field in runs:
        batch_id = uuid.uuid4().hex[:10]
        summary = await stack.run(
            batch_id=batch_id, provider=provider, endpoint=endpoint, model=model, requests=requests
        )
        assert (summary.status, summary.counts.succeeded) == ("completed", 3)
        async with BatchClient(stack.client, stack.settings, stack.settings.database_url) as client:
            rows = [row async for row in client.get(batch_id).results()]
        assert len(rows) == 3
        for request, row in zip(requests, rows, strict=True):
            expected = expected_chat_response(
                provider, endpoint, request[body_field], model=f"models/{model}" if model else None
            )
            assert row["line"] is not None
            assert row["body"] == expected, provider
        lines = [json.loads(line) for line in _cli_results(stack, batch_id).split("\n")[:-1]]
        assert [line.get("custom_id", line.get("key")) for line in lines] == [
            r.get("custom_id", r.get("key")) for r in requests
        ]

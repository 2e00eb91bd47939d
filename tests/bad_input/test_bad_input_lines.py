"""Bad request files: each is refused naming its line (and field), before anything reaches a provider.

A batch started before the first test stays in flight at the emulator through all of them and must
complete normally at the end (`test_zz_...`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from durabatch.providers.formats import MAX_CUSTOM_ID_LENGTH
from durabatch.providers.gemini import GEMINI_LIMITS
from tests.bad_input.conftest import Background, assert_background_untouched, expect_refused
from tests.stack import Stack, chat_requests

ENDPOINT = "/v1/chat/completions"


def write_lines(path: Path, lines: list[Any]) -> str:
    """A JSONL file from dicts (dumped), str or bytes (written as given), one per line."""
    out = bytearray()
    for line in lines:
        if isinstance(line, dict | list):
            out += json.dumps(line).encode()
        elif isinstance(line, str):
            out += line.encode()
        else:
            out += line
        out += b"\n"
    path.write_bytes(bytes(out))
    return str(path)


def good(n: int = 3) -> list[Any]:
    return list(chat_requests(n))


async def test_background_batch_is_in_flight(background: Background) -> None:
    status = await background.handle.query("status")
    assert status["status"] in ("submitted", "in_progress")


async def test_empty_file(stack: Stack, tmp_path: Path) -> None:
    path = str(tmp_path / "empty.jsonl")
    Path(path).write_bytes(b"")
    await expect_refused(stack, requests_uri=path, names=["requests_uri", path, "no requests", "empty"])


async def test_empty_inline_list(stack: Stack) -> None:
    await expect_refused(stack, requests=[], names=["requests", "no requests"])


async def test_blank_lines_only(stack: Stack, tmp_path: Path) -> None:
    (tmp_path / "blank.jsonl").write_bytes(b"\n  \n\r\n")
    await expect_refused(
        stack, requests_uri=str(tmp_path / "blank.jsonl"), names=["requests_uri", "blank lines"]
    )


async def test_not_json(stack: Stack, tmp_path: Path) -> None:
    lines = good()
    lines[1] = '{"custom_id": "r1", "body": {'
    uri = write_lines(tmp_path / "in.jsonl", lines)
    await expect_refused(stack, requests_uri=uri, names=["line 2", "not valid JSON"])


async def test_json_that_is_not_an_object(stack: Stack, tmp_path: Path) -> None:
    lines = good()
    lines[2] = ["r2", {"messages": []}]
    uri = write_lines(tmp_path / "in.jsonl", lines)
    await expect_refused(stack, requests_uri=uri, names=["line 3", "expected a JSON object", "an array"])


async def test_json_scalar_line(stack: Stack, tmp_path: Path) -> None:
    lines = good()
    lines[0] = '"just a string"'
    uri = write_lines(tmp_path / "in.jsonl", lines)
    await expect_refused(stack, requests_uri=uri, names=["line 1", "expected a JSON object", "a string"])


async def test_missing_custom_id(stack: Stack, tmp_path: Path) -> None:
    lines = good()
    del lines[1]["custom_id"]
    uri = write_lines(tmp_path / "in.jsonl", lines)
    await expect_refused(stack, requests_uri=uri, names=["line 2", "'custom_id'", "missing"])


async def test_empty_custom_id(stack: Stack, tmp_path: Path) -> None:
    lines = good()
    lines[1]["custom_id"] = ""
    uri = write_lines(tmp_path / "in.jsonl", lines)
    await expect_refused(stack, requests_uri=uri, names=["line 2", "'custom_id'", "must not be empty"])


async def test_non_string_custom_id(stack: Stack, tmp_path: Path) -> None:
    lines = good()
    lines[2]["custom_id"] = 17
    uri = write_lines(tmp_path / "in.jsonl", lines)
    await expect_refused(stack, requests_uri=uri, names=["line 3", "'custom_id'", "must be a string"])


async def test_duplicate_custom_id(stack: Stack, tmp_path: Path) -> None:
    lines = good(4)
    lines[3]["custom_id"] = lines[1]["custom_id"]
    uri = write_lines(tmp_path / "in.jsonl", lines)
    await expect_refused(stack, requests_uri=uri, names=["line 4", "duplicate custom_id", "'r1'"])


async def test_custom_id_too_long(stack: Stack, tmp_path: Path) -> None:
    lines = good()
    lines[1]["custom_id"] = "x" * (MAX_CUSTOM_ID_LENGTH + 1)
    uri = write_lines(tmp_path / "in.jsonl", lines)
    await expect_refused(
        stack, requests_uri=uri, names=["line 2", "'custom_id'", f"{MAX_CUSTOM_ID_LENGTH + 1} characters"]
    )


async def test_mixed_endpoints(stack: Stack, tmp_path: Path) -> None:
    lines = good()
    lines[2]["url"] = "/v1/embeddings"
    uri = write_lines(tmp_path / "in.jsonl", lines)
    await expect_refused(stack, requests_uri=uri, names=["line 3", "'url'", "/v1/embeddings", ENDPOINT])


async def test_mixed_endpoints_inline(stack: Stack) -> None:
    requests = chat_requests(3)
    requests[1]["url"] = "/v1/responses"
    await expect_refused(stack, requests=requests, names=["line 2", "'url'", "/v1/responses"])


async def test_invalid_utf8(stack: Stack, tmp_path: Path) -> None:
    lines = good()
    lines[1] = json.dumps(lines[1]).encode().replace(b"question", b"qu\xffestion")
    uri = write_lines(tmp_path / "in.jsonl", lines)
    await expect_refused(stack, requests_uri=uri, names=["line 2", "UTF-8"])


async def test_line_over_the_providers_size_limit(stack: Stack, tmp_path: Path) -> None:
    # Gemini's real per-request limit (20 MB): the smallest of the three providers'.
    limit = GEMINI_LIMITS.max_line_bytes
    small = {"key": "k1", "request": {"contents": [{"parts": [{"text": "hello"}]}]}}
    big = {"key": "k2", "request": {"contents": [{"parts": [{"text": "x" * limit}]}]}}
    uri = write_lines(tmp_path / "in.jsonl", [small, big, {**small, "key": "k3"}])
    await expect_refused(
        stack,
        provider="gemini",
        endpoint="generateContent",
        model="gemini-2.0-flash",
        requests_uri=uri,
        names=["line 2", f"limit of {limit} bytes", "gemini"],
    )


async def test_zz_background_batch_untouched(background: Background) -> None:
    await assert_background_untouched(background)

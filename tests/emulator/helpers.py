"""Helpers shared by the emulator tests."""

from __future__ import annotations

import json
from typing import Any, TypeVar

import httpx

from tests.helpers import eventually

KEY = "test-key"
OPENAI_H = {"Authorization": f"Bearer {KEY}"}
ANTHROPIC_H = {"x-api-key": KEY, "anthropic-version": "2023-06-01"}
GEMINI_H = {"x-goog-api-key": KEY}

T = TypeVar("T")


def chat_line(custom_id: str, text: str = "hello world", model: str = "gpt-4o-mini") -> dict[str, Any]:
    return {
        "custom_id": custom_id,
        "method": "POST",
        "url": "/v1/chat/completions",
        "body": {"model": model, "messages": [{"role": "user", "content": text}]},
    }


def jsonl(lines: list[dict[str, Any]]) -> bytes:
    return b"".join(json.dumps(x).encode() + b"\n" for x in lines)


async def openai_batch(
    http: httpx.AsyncClient, lines: list[dict[str, Any]] | bytes, metadata: dict[str, str] | None = None
) -> dict[str, Any]:
    """Upload `lines` and create a chat-completions batch over raw HTTP."""
    data = lines if isinstance(lines, bytes) else jsonl(lines)
    up = await http.post(
        "/v1/files", headers=OPENAI_H, files={"file": ("in.jsonl", data)}, data={"purpose": "batch"}
    )
    up.raise_for_status()
    body: dict[str, Any] = {
        "input_file_id": up.json()["id"],
        "endpoint": "/v1/chat/completions",
        "completion_window": "24h",
    }
    if metadata:
        body["metadata"] = metadata
    r = await http.post("/v1/batches", headers=OPENAI_H, json=body)
    r.raise_for_status()
    return dict(r.json())


async def openai_wait(http: httpx.AsyncClient, batch_id: str, statuses: set[str]) -> dict[str, Any]:
    async def fetch() -> dict[str, Any]:
        r = await http.get(f"/v1/batches/{batch_id}", headers=OPENAI_H)
        r.raise_for_status()
        return dict(r.json())

    return await eventually(
        fetch, lambda b: b["status"] in statuses, 10.0, 0.02, what=f"status in {statuses}"
    )


def parse_jsonl(raw: bytes) -> list[dict[str, Any]]:
    return [json.loads(x) for x in raw.split(b"\n") if x.strip()]


async def add_fault(http: httpx.AsyncClient, **spec: Any) -> dict[str, Any]:
    r = await http.post("/_emulator/faults", json=spec)
    assert r.status_code == 201, r.text
    return dict(r.json())

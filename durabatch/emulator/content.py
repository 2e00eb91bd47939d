"""Deterministic model answers: every response is a pure function of the request body.

The rules (also in docs/emulator.md) are:

* the *prompt text* is the text of the last user turn (OpenAI `messages[-1 user].content`, or for
  `/v1/responses` the `input` string or its last user item, Anthropic `messages[-1 user].content`,
  Gemini `contents[-1 user].parts[*].text`); text parts of a multi-part message are joined with a
  single newline;
* the reply text is ``"echo:" + sha256(prompt_text.encode()).hexdigest()[:16]``;
* input tokens = the number of whitespace-separated words in *all* text of the request (system
  prompt and every message) + ``PROMPT_OVERHEAD_TOKENS``;
* output tokens = ``REPLY_TOKENS`` (the reply always has the same length);
* embeddings: one vector per input string, ``dimensions`` (default 8) floats, each
  ``(byte - 127.5) / 127.5`` of ``sha256(f"{i}:{text}")`` bytes, rounded to 6 places; input tokens =
  words of all inputs + ``PROMPT_OVERHEAD_TOKENS``;
* ids and ``created`` are derived from a digest of the canonical JSON of the body, so they too
  repeat for the same request.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any, Literal

__all__ = [
    "FIXED_CREATED",
    "PROMPT_OVERHEAD_TOKENS",
    "REPLY_TOKENS",
    "Usage",
    "body_digest",
    "expected_chat_response",
    "expected_usage",
    "prompt_text",
    "reply_text",
    "request_text",
]

Provider = Literal["openai", "anthropic", "gemini"]

PROMPT_OVERHEAD_TOKENS = 4
REPLY_TOKENS = 3
EMBEDDING_DIMENSIONS = 8
#: `created` of OpenAI bodies: a fixed instant, so the same request gives byte-identical output
FIXED_CREATED = 1_700_000_000


@dataclass(frozen=True)
class Usage:
    input_tokens: int
    output_tokens: int

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens


def body_digest(body: Any) -> str:
    """sha256 hex of the canonical JSON (sorted keys, no spaces) of a request body."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _texts_of_content(content: Any) -> list[str]:
    # Content is a string or a list of typed parts across all three providers.
    if isinstance(content, str):
        return [content]
    out: list[str] = []
    if isinstance(content, list):
        for part in content:
            if isinstance(part, str):
                out.append(part)
            elif isinstance(part, dict) and isinstance(part.get("text"), str):
                out.append(part["text"])
    return out


def _turns(provider: Provider, body: dict[str, Any]) -> list[tuple[str, list[str]]]:
    """(role, texts) for every turn, the system prompt first (role "system")."""
    turns: list[tuple[str, list[str]]] = []
    if provider == "gemini":
        system = body.get("systemInstruction") or body.get("system_instruction")
        if isinstance(system, dict):
            turns.append(("system", _texts_of_content(system.get("parts"))))
        contents = body.get("contents")
        if isinstance(contents, dict):
            contents = [contents]
        for c in contents or []:
            if isinstance(c, dict):
                turns.append((str(c.get("role") or "user"), _texts_of_content(c.get("parts"))))
        return turns
    if provider == "anthropic" and body.get("system") is not None:
        turns.append(("system", _texts_of_content(body.get("system"))))
    if provider == "openai" and "messages" not in body and "input" in body:
        # the Responses API: `instructions`, then `input` (a string, or a list of message items)
        if isinstance(body.get("instructions"), str):
            turns.append(("system", [body["instructions"]]))
        items = body["input"]
        if isinstance(items, str):
            return [*turns, ("user", [items])]
        for m in items if isinstance(items, list) else []:
            if isinstance(m, dict):
                turns.append((str(m.get("role") or "user"), _texts_of_content(m.get("content"))))
        return turns
    for m in body.get("messages") or []:
        if isinstance(m, dict):
            turns.append((str(m.get("role") or "user"), _texts_of_content(m.get("content"))))
    return turns


def prompt_text(provider: Provider, body: dict[str, Any]) -> str:
    """The text of the last user turn (empty when there is none)."""
    for role, texts in reversed(_turns(provider, body)):
        if role == "user":
            return "\n".join(texts)
    return ""


def request_text(provider: Provider, body: dict[str, Any]) -> str:
    """All text of a request (every turn, or every embedding input), joined by newlines: what the
    `__flaky` marker of a real-time call is keyed on, since such a call has no custom_id."""
    texts = [t for _, turn in _turns(provider, body) for t in turn]
    return "\n".join(texts or _embedding_inputs(body))


def reply_text(provider: Provider, body: dict[str, Any]) -> str:
    return "echo:" + hashlib.sha256(prompt_text(provider, body).encode()).hexdigest()[:16]


def _words(texts: list[str]) -> int:
    return sum(len(t.split()) for t in texts)


def _embedding_inputs(body: dict[str, Any]) -> list[str]:
    raw = body.get("input")
    if isinstance(raw, str):
        return [raw]
    if isinstance(raw, list):
        return [x if isinstance(x, str) else json.dumps(x) for x in raw]
    return []


def expected_usage(provider: Provider, endpoint: str, body: dict[str, Any]) -> Usage:
    """Token usage the emulator reports for this request (see the module docstring)."""
    if endpoint == "/v1/embeddings":
        return Usage(_words(_embedding_inputs(body)) + PROMPT_OVERHEAD_TOKENS, 0)
    words = sum(_words(texts) for _, texts in _turns(provider, body))
    return Usage(words + PROMPT_OVERHEAD_TOKENS, REPLY_TOKENS)


def _embedding(text: str, index: int, dims: int) -> list[float]:
    out: list[float] = []
    counter = 0
    while len(out) < dims:
        digest = hashlib.sha256(f"{index}:{counter}:{text}".encode()).digest()
        out.extend(round((b - 127.5) / 127.5, 6) for b in digest)
        counter += 1
    return out[:dims]


def _responses_body(body: dict[str, Any], digest: str, usage: Usage, model: str) -> dict[str, Any]:
    """A Responses API `response` object (the shape of `/v1/responses`, in real time and in batch)."""
    return {
        "id": "resp_" + digest[:40],
        "object": "response",
        "created_at": FIXED_CREATED,
        "status": "completed",
        "error": None,
        "incomplete_details": None,
        "instructions": body.get("instructions"),
        "max_output_tokens": body.get("max_output_tokens"),
        "model": model,
        "output": [
            {
                "type": "message",
                "id": "msg_" + digest[:40],
                "status": "completed",
                "role": "assistant",
                "content": [{"type": "output_text", "text": reply_text("openai", body), "annotations": []}],
            }
        ],
        "parallel_tool_calls": True,
        "previous_response_id": None,
        "temperature": 1.0,
        "tool_choice": "auto",
        "tools": [],
        "top_p": 1.0,
        "usage": {
            "input_tokens": usage.input_tokens,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": usage.output_tokens,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": usage.total_tokens,
        },
        "metadata": {},
    }


def _openai_body(endpoint: str, body: dict[str, Any]) -> dict[str, Any]:
    digest = body_digest(body)
    usage = expected_usage("openai", endpoint, body)
    model = str(body.get("model") or "gpt-4o-mini")
    if endpoint == "/v1/responses":
        return _responses_body(body, digest, usage, model)
    if endpoint == "/v1/embeddings":
        dims = int(body.get("dimensions") or EMBEDDING_DIMENSIONS)
        return {
            "object": "list",
            "data": [
                {"object": "embedding", "index": i, "embedding": _embedding(t, i, dims)}
                for i, t in enumerate(_embedding_inputs(body))
            ],
            "model": model,
            "usage": {"prompt_tokens": usage.input_tokens, "total_tokens": usage.input_tokens},
        }
    return {
        "id": "chatcmpl-" + digest[:29],
        "object": "chat.completion",
        "created": FIXED_CREATED,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": reply_text("openai", body),
                    "refusal": None,
                    "annotations": [],
                },
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": {
            "prompt_tokens": usage.input_tokens,
            "completion_tokens": usage.output_tokens,
            "total_tokens": usage.total_tokens,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": 0,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        },
        "service_tier": "default",
        "system_fingerprint": "fp_emulator",
    }


def _anthropic_body(body: dict[str, Any], service_tier: str) -> dict[str, Any]:
    usage = expected_usage("anthropic", "/v1/messages", body)
    return {
        "id": "msg_" + body_digest(body)[:24],
        "type": "message",
        "role": "assistant",
        "model": str(body.get("model") or "claude-sonnet-4-5"),
        "content": [{"type": "text", "text": reply_text("anthropic", body)}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {
            "input_tokens": usage.input_tokens,
            "output_tokens": usage.output_tokens,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
            "service_tier": service_tier,
        },
    }


def _gemini_body(body: dict[str, Any], model: str) -> dict[str, Any]:
    usage = expected_usage("gemini", ":generateContent", body)
    return {
        "candidates": [
            {
                "content": {"role": "model", "parts": [{"text": reply_text("gemini", body)}]},
                "finishReason": "STOP",
                "index": 0,
            }
        ],
        "usageMetadata": {
            "promptTokenCount": usage.input_tokens,
            "candidatesTokenCount": usage.output_tokens,
            "totalTokenCount": usage.total_tokens,
        },
        "modelVersion": model.removeprefix("models/"),
        "responseId": body_digest(body)[:22],
    }


def expected_chat_response(
    provider: Provider,
    endpoint: str,
    body: dict[str, Any],
    *,
    model: str | None = None,
    service_tier: str = "batch",
) -> dict[str, Any]:
    """The response body the emulator returns for `body`.

    `endpoint` is the OpenAI endpoint (`/v1/chat/completions`, `/v1/responses` or `/v1/embeddings`;
    any other gets a chat completion); it is ignored
    for Anthropic and Gemini. `model` is the Gemini model (Gemini requests rarely carry it);
    `service_tier` is Anthropic's usage tier, "batch" in batch results and "standard" in real time.
    """
    if provider == "openai":
        return _openai_body(endpoint, body)
    if provider == "anthropic":
        return _anthropic_body(body, service_tier)
    return _gemini_body(body, model or str(body.get("model") or "models/gemini-2.5-flash"))

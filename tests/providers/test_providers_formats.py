"""Request-line normalisation: every accepted shape, and errors naming line and field."""

from __future__ import annotations

from typing import Any

import pytest

from durabatch.providers.formats import (
    KNOWN_PROVIDERS,
    InvalidRequestLine,
    check_endpoint,
    model_of,
    normalize_line,
)

CHAT = "/v1/chat/completions"
OPENAI_BODY = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
ANTHROPIC_PARAMS = {
    "model": "claude-haiku-4-5",
    "max_tokens": 10,
    "messages": [{"role": "user", "content": "hi"}],
}
GEMINI_REQUEST = {"contents": [{"parts": [{"text": "hi"}]}]}


def test_known_providers() -> None:
    assert {"openai", "anthropic", "gemini"} == KNOWN_PROVIDERS


@pytest.mark.parametrize(
    "line",
    [
        {"custom_id": "r1", "method": "POST", "url": CHAT, "body": OPENAI_BODY},
        {"custom_id": "r1", "body": OPENAI_BODY},
    ],
)
def test_openai_shapes(line: dict[str, Any]) -> None:
    req = normalize_line(line, 1, "openai", CHAT)
    assert req.custom_id == "r1"
    assert req.body == OPENAI_BODY


def test_anthropic_and_gemini_shapes() -> None:
    assert normalize_line(
        {"custom_id": "a-1", "params": ANTHROPIC_PARAMS}, 1, "anthropic", "/v1/messages"
    ).body == (ANTHROPIC_PARAMS)
    assert normalize_line(
        {"custom_id": "a_2", "body": ANTHROPIC_PARAMS}, 2, "anthropic", "/v1/messages"
    ).body == (ANTHROPIC_PARAMS)
    req = normalize_line({"key": "k1", "request": GEMINI_REQUEST}, 3, "gemini", "generateContent")
    assert (req.custom_id, req.body) == ("k1", GEMINI_REQUEST)


@pytest.mark.parametrize(
    ("line", "provider", "endpoint", "field"),
    [
        ([1, 2], "openai", CHAT, None),
        ({"body": OPENAI_BODY}, "openai", CHAT, "custom_id"),
        ({"custom_id": "", "body": OPENAI_BODY}, "openai", CHAT, "custom_id"),
        ({"custom_id": 5, "body": OPENAI_BODY}, "openai", CHAT, "custom_id"),
        ({"custom_id": "x" * 65, "body": OPENAI_BODY}, "openai", CHAT, "custom_id"),
        ({"custom_id": "a b", "params": ANTHROPIC_PARAMS}, "anthropic", "/v1/messages", "custom_id"),
        ({"custom_id": "r", "method": "GET", "body": OPENAI_BODY}, "openai", CHAT, "method"),
        ({"custom_id": "r", "url": "/v1/embeddings", "body": OPENAI_BODY}, "openai", CHAT, "url"),
        ({"custom_id": "r"}, "openai", CHAT, "body"),
        ({"custom_id": "r", "body": "text"}, "openai", CHAT, "body"),
        ({"custom_id": "r", "body": {**OPENAI_BODY, "stream": True}}, "openai", CHAT, "body.stream"),
        ({"custom_id": "r", "params": {"max_tokens": 5}}, "anthropic", "/v1/messages", "params.messages"),
        (
            {"custom_id": "r", "params": {**ANTHROPIC_PARAMS, "max_tokens": 0}},
            "anthropic",
            "/v1/messages",
            "params.max_tokens",
        ),
        ({"key": "r", "request": {"x": 1}}, "gemini", "generateContent", "request.contents"),
    ],
)
def test_rejections_name_line_and_field(
    line: object, provider: str, endpoint: str, field: str | None
) -> None:
    with pytest.raises(InvalidRequestLine) as info:
        normalize_line(line, 7, provider, endpoint)
    assert info.value.line_no == 7
    assert info.value.field == field
    assert str(info.value).startswith("line 7")
    if field:
        assert repr(field) in str(info.value)


def test_check_endpoint() -> None:
    check_endpoint("openai", "/v1/embeddings")
    check_endpoint("gemini", "generateContent")
    with pytest.raises(ValueError, match=r"'/v1/messages'.*accepted: /v1/chat/completions"):
        check_endpoint("openai", "/v1/messages")
    with pytest.raises(ValueError, match="unknown provider 'mistral'"):
        check_endpoint("mistral", "/v1/chat/completions")


def test_model_of() -> None:
    assert model_of("openai", OPENAI_BODY) == "gpt-4o-mini"
    assert model_of("gemini", {"model": "models/gemini-2.5-flash"}) == "gemini-2.5-flash"
    assert model_of("anthropic", {}) is None

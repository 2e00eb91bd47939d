"""The deterministic content function and the timeline, as pure logic."""

from __future__ import annotations

import hashlib

from durabatch.emulator.content import expected_chat_response, expected_usage, reply_text
from durabatch.emulator.timeline import Phase, Timeline


def test_reply_is_digest_of_last_user_message() -> None:
    body = {
        "model": "gpt-4o-mini",
        "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": "first"},
            {"role": "assistant", "content": "ok"},
            {"role": "user", "content": [{"type": "text", "text": "two words"}]},
        ],
    }
    assert reply_text("openai", body) == "echo:" + hashlib.sha256(b"two words").hexdigest()[:16]
    usage = expected_usage("openai", "/v1/chat/completions", body)
    assert (usage.input_tokens, usage.output_tokens) == (2 + 1 + 1 + 2 + 4, 3)
    a = expected_chat_response("openai", "/v1/chat/completions", body)
    assert a == expected_chat_response("openai", "/v1/chat/completions", dict(body))
    assert a["usage"]["total_tokens"] == 13


def test_anthropic_system_and_gemini_parts_count() -> None:
    ant = {
        "model": "c",
        "max_tokens": 5,
        "system": "sys prompt",
        "messages": [{"role": "user", "content": "a b c"}],
    }
    assert expected_usage("anthropic", "", ant).input_tokens == 2 + 3 + 4
    gem = {
        "contents": [{"parts": [{"text": "x y"}, {"text": "z"}]}],
        "systemInstruction": {"parts": [{"text": "s"}]},
    }
    assert expected_usage("gemini", "", gem).input_tokens == 3 + 1 + 4
    assert reply_text("gemini", gem) == "echo:" + hashlib.sha256(b"x y\nz").hexdigest()[:16]


def test_embeddings_are_stable_and_sized() -> None:
    body = {"model": "text-embedding-3-small", "input": ["a b", "c"], "dimensions": 40}
    r = expected_chat_response("openai", "/v1/embeddings", body)
    assert [len(d["embedding"]) for d in r["data"]] == [40, 40]
    assert all(-1 <= x <= 1 for x in r["data"][0]["embedding"])
    assert r["usage"]["prompt_tokens"] == 3 + 4


def test_timeline_phases_and_counts() -> None:
    t = Timeline(created_at=0, n=100, validating_s=1, per_request_s=0.01, finalizing_s=1, expire_after_s=50)
    seen = [(t.processed(at), t.phase) for at in (0.5, 1.5, 2.5, 3.5)]
    assert seen == [
        (0, Phase.VALIDATING),
        (50, Phase.RUNNING),
        (100, Phase.FINALIZING),
        (100, Phase.COMPLETED),
    ]
    assert t.entered[Phase.COMPLETED] == 3


def test_timeline_hold_shifts_deadlines_and_expiry_is_partial() -> None:
    t = Timeline(created_at=0, n=100, validating_s=1, per_request_s=0.1, finalizing_s=1, expire_after_s=5)
    t.hold(1.5)
    assert t.processed(100) == 5
    t.release(101.5)
    assert t.processed(102) == 10
    t.refresh(200)
    assert t.phase == Phase.EXPIRED and t.base_processed == 40 and t.entered[Phase.EXPIRED] == 105

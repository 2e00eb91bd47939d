"""The cost estimate errs high and never fails on a body the validator accepted."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from durabatch.budget import cost_refusal
from durabatch.estimate import BYTES_PER_TOKEN, UNCAPPED_OUTPUT_TOKENS, CostEstimate, max_output_of
from durabatch.providers.prices import ModelPrice, price_of
from durabatch.requests_file import RequestsValidator


def test_each_provider_caps_output_where_its_api_says() -> None:
    assert (
        max_output_of("openai", "/v1/chat/completions", {"max_completion_tokens": 50, "max_tokens": 9}) == 50
    )
    assert max_output_of("openai", "/v1/chat/completions", {"max_tokens": 9}) == 9
    assert max_output_of("openai", "/v1/responses", {"max_output_tokens": 7}) == 7
    assert max_output_of("openai", "/v1/embeddings", {"input": "x"}) == 0
    assert max_output_of("anthropic", "/v1/messages", {"max_tokens": 1024}) == 1024
    assert max_output_of("gemini", "generateContent", {"generationConfig": {"maxOutputTokens": 64}}) == 64
    assert max_output_of("openai", "/v1/chat/completions", {"max_tokens": True}) is None
    assert max_output_of("openai", "/v1/chat/completions", {"max_tokens": -1}) is None


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)


@given(
    st.sampled_from(["openai", "anthropic", "gemini"]),
    st.dictionaries(st.text(max_size=30), JSON, max_size=6),
)
def test_any_body_gives_a_cap_or_none(provider: str, body: dict[str, Any]) -> None:
    cap = max_output_of(provider, "/v1/chat/completions", body)
    assert cap is None or 0 <= cap <= 1_000_000


def test_the_range_bills_input_low_and_every_cap_high() -> None:
    estimate = CostEstimate()
    estimate.add("openai", "/v1/chat/completions", {"max_tokens": 100}, 400)
    estimate.add("openai", "/v1/chat/completions", {}, 401)
    assert estimate.input_tokens == 100 + 101
    assert estimate.max_output_tokens == 100 + UNCAPPED_OUTPUT_TOKENS and estimate.uncapped == 1
    price = ModelPrice((Decimal("1"), None, Decimal("2")))  # USD per 1M tokens
    cost = estimate.cost(price)
    assert cost is not None
    assert cost.low_usd == Decimal(201) / 1_000_000
    assert cost.high_usd == cost.low_usd + Decimal(2 * (100 + UNCAPPED_OUTPUT_TOKENS)) / 1_000_000
    assert estimate.cost(None) is None


def test_the_validator_estimates_what_it_stages() -> None:
    validator = RequestsValidator("anthropic", "/v1/messages", "claude-3-5-haiku-latest")
    line = (
        b'{"custom_id": "a", "params": {"max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}}'
    )
    staged = validator.feed(1, line)
    assert staged is not None
    assert validator.estimate.requests == 1 and validator.estimate.max_output_tokens == 10
    assert validator.estimate.input_tokens == -(-staged.byte_size // BYTES_PER_TOKEN)
    assert price_of("anthropic", "claude-3-5-haiku-latest") is not None


def test_the_limit_refuses_above_it_and_without_a_price() -> None:
    assert cost_refusal(1.0, 0.5, "m") is None
    assert "above max_cost_usd" in (cost_refusal(1.0, 1.5, "m") or "")
    assert "no batch price" in (cost_refusal(1.0, None, "m") or "")

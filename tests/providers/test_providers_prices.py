"""Batch prices: table lookups, version suffixes, overrides, unknown models."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

from durabatch.providers.prices import cost_usd, price_of


def test_known_models_and_suffixes() -> None:
    assert cost_usd("openai", "gpt-4o-mini", 1_000_000, 0, 1_000_000) == Decimal("0.375")
    assert cost_usd("openai", "gpt-4o-mini-2024-07-18", 1_000_000, 0, 0) == Decimal("0.075")
    # cached tokens are part of input and priced at the cached rate
    assert cost_usd("openai", "gpt-5", 1_000_000, 500_000, 0) == Decimal("0.3125") + Decimal("0.03125")
    # unknown cached price: cached tokens priced as input, never less
    assert cost_usd("openai", "gpt-4o", 1_000_000, 1_000_000, 0) == Decimal("1.25")
    assert price_of("anthropic", "claude-sonnet-4-5-20250929") == price_of("anthropic", "claude-sonnet-4-5")
    assert price_of("anthropic", "claude-3-5-haiku-latest") is not None
    assert price_of("gemini", "models/gemini-2.5-flash-lite") == price_of("gemini", "gemini-2.5-flash-lite")
    assert price_of("gemini", "gemini-2.5-flash-lite") != price_of("gemini", "gemini-2.5-flash")


def test_gemini_2_0_flash_has_its_batch_price() -> None:
    # Google's standard $0.10 in / $0.40 out per 1M tokens, halved in batch mode
    assert cost_usd("gemini", "gemini-2.0-flash", 1_000_000, 0, 1_000_000) == Decimal("0.25")
    assert price_of("gemini", "models/gemini-2.0-flash-001") == price_of("gemini", "gemini-2.0-flash")
    assert price_of("gemini", "gemini-2.0-flash-lite") is None, "not priced as 2.0 Flash"


def test_unknown_is_none_not_zero() -> None:
    assert cost_usd("openai", "gpt-5-nano", 10, 0, 10) is None  # not gpt-5's price
    assert cost_usd("openai", None, 10, 0, 10) is None
    assert cost_usd("mistral", "x", 10, 0, 10) is None


def test_overrides(tmp_path: Path) -> None:
    path = tmp_path / "prices.json"
    path.write_text(
        json.dumps(
            {
                "openai": {
                    "gpt-5-nano": {"input": "0.025", "cached_input": None, "output": "0.2"},
                    "gpt-4o-mini": {"input": "1", "output": "2"},
                }
            }
        )
    )
    assert cost_usd("openai", "gpt-5-nano", 1_000_000, 0, 0, overrides_file=path) == Decimal("0.025")
    assert cost_usd("openai", "gpt-4o-mini", 0, 0, 1_000_000, overrides_file=path) == Decimal("2")
    assert cost_usd("openai", "gpt-4o", 1_000_000, 0, 0, overrides_file=path) == Decimal("1.25")


def test_stored_cost_is_cost_of_rounded_as_the_column_stores_it() -> None:
    import random

    from durabatch.providers.prices import ModelPrice, cost_of, stored_cost

    rng = random.Random(7)
    whole = price_of("anthropic", "claude-sonnet-4-5")  # a cached price of its own
    odd = ModelPrice((Decimal("0.123456789"), Decimal("0.0123456"), Decimal("1.5")))  # beyond 1e-10/token
    assert whole is not None
    for price in (whole, odd, price_of("openai", "gpt-4o-mini")):
        assert price is not None
        cost = stored_cost(price)
        for _ in range(2000):
            tokens = [rng.choice((0, 1, 7, rng.randrange(2**31))) for _ in range(3)]
            expected = cost_of(price, *tokens).quantize(Decimal("1e-10"), "ROUND_HALF_UP")
            assert cost(*tokens) == expected, (price, tokens)
    # the fallback rounds half up, as numeric(18, 10) does: 0.5e-10 of a token's price
    half = ModelPrice((Decimal("0.00005"), None, Decimal("0")))
    assert stored_cost(half)(1, 0, 0) == Decimal("1e-10")
    assert stored_cost(half)(1, 0, 0) != cost_of(half, 1, 0, 0)

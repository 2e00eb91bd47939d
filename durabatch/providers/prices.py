"""Batch prices and the cost of one result.

Prices live in data (`prices.json`, USD per 1M tokens, batch discount applied), shaped
``{provider: {model: {"input": str, "cached_input": str | null, "output": str}}}``. A JSON file of the
same shape (settings ``prices_file``) overrides or adds models entry by entry.

Token contract (what the clients put in `ResultLine`): `input_tokens` counts *all* prompt tokens,
cached ones included; `cached_tokens` is the cached part of them. So the cost is
``(input - cached) * input + cached * cached_input + output * output``, per million tokens. A null
``cached_input`` prices cached tokens as normal input (never under-charge). Anthropic cache *writes*
are priced as normal input (their 1.25x/2x surcharge is not modelled).

A model matches a table entry exactly, or with a version suffix (``gpt-4o-mini-2024-07-18``,
``claude-sonnet-4-5-20250929``, ``claude-3-5-haiku-latest``); the longest such entry wins. An unknown
model costs ``None`` (unknown), never zero.

Real-time calls (the synchronous endpoints) cost twice the batch price: the batch APIs are a 50%
discount on the same models (`realtime_price_of`).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from decimal import ROUND_HALF_UP, Decimal
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

__all__ = [
    "COST_SCALE",
    "ModelPrice",
    "cost_of",
    "cost_usd",
    "load_prices",
    "price_of",
    "realtime_price_of",
    "stored_cost",
]

log = logging.getLogger(__name__)

_MILLION = Decimal(1_000_000)
#: decimal places of a stored cost (`results.cost_usd` is numeric(18, 10))
COST_SCALE = 10
_QUANTUM = Decimal(1).scaleb(-COST_SCALE)
#: a price per 1M tokens times this is the price of one token in units of the stored scale
_UNITS_PER_MILLION = Decimal(10) ** (COST_SCALE - 6)
# what may follow a table name in a model id: a date, a version number, or an alias tag
_VERSION_SUFFIX = re.compile(r"^-(\d{8}|\d{4}-\d{2}-\d{2}|\d{2}-\d{4}|\d{3}|latest|preview(-[\w-]+)?|v\d+)$")


class ModelPrice(tuple[Decimal, Decimal | None, Decimal]):
    """(input, cached_input, output) in USD per 1M tokens."""

    __slots__ = ()

    @property
    def input(self) -> Decimal:
        return self[0]

    @property
    def cached_input(self) -> Decimal | None:
        return self[1]

    @property
    def output(self) -> Decimal:
        return self[2]


PriceTable = dict[str, dict[str, ModelPrice]]


def _parse_table(data: Any, source: str) -> PriceTable:
    if not isinstance(data, dict):
        raise ValueError(f"{source}: expected a JSON object of providers")
    table: PriceTable = {}
    for provider, models in data.items():
        if provider.startswith("_"):
            continue
        if not isinstance(models, dict):
            raise ValueError(f"{source}: {provider}: expected an object of models")
        for model, entry in models.items():
            try:
                cached = entry.get("cached_input")
                price = ModelPrice(
                    (
                        Decimal(str(entry["input"])),
                        None if cached is None else Decimal(str(cached)),
                        Decimal(str(entry["output"])),
                    )
                )
            except (AttributeError, KeyError, ArithmeticError, TypeError) as exc:
                raise ValueError(
                    f"{source}: {provider}/{model}: needs input and output prices ({exc})"
                ) from None
            table.setdefault(provider, {})[model] = price
    return table


@lru_cache(maxsize=1)
def _builtin() -> PriceTable:
    text = resources.files("durabatch.providers").joinpath("prices.json").read_text("utf-8")
    return _parse_table(json.loads(text), "prices.json")


@lru_cache(maxsize=8)
def _override(path: str, mtime_ns: int) -> PriceTable:
    return _parse_table(json.loads(Path(path).read_text("utf-8")), path)


def load_prices(overrides_file: Path | None = None) -> PriceTable:
    """The built-in table with `overrides_file` merged over it (re-read when the file changes)."""
    table = {provider: dict(models) for provider, models in _builtin().items()}
    if overrides_file is not None:
        extra = _override(str(overrides_file), overrides_file.stat().st_mtime_ns)
        for provider, models in extra.items():
            table.setdefault(provider, {}).update(models)
    return table


def price_of(provider: str, model: str | None, overrides_file: Path | None = None) -> ModelPrice | None:
    if not model:
        return None
    models = load_prices(overrides_file).get(provider, {})
    name = model.removeprefix("models/")
    if name in models:
        return models[name]
    best: str | None = None
    for candidate in models:
        if name.startswith(candidate) and _VERSION_SUFFIX.match(name[len(candidate) :]):
            if best is None or len(candidate) > len(best):
                best = candidate
    return models[best] if best is not None else None


def realtime_price_of(
    provider: str, model: str | None, overrides_file: Path | None = None
) -> ModelPrice | None:
    """The real-time (synchronous endpoint) price: twice the batch price, as the table holds
    batch prices and every provider's batch discount is 50%."""
    price = price_of(provider, model, overrides_file)
    if price is None:
        return None
    cached = None if price.cached_input is None else price.cached_input * 2
    return ModelPrice((price.input * 2, cached, price.output * 2))


def cost_usd(
    provider: str,
    model: str | None,
    input_tokens: int,
    cached_tokens: int,
    output_tokens: int,
    overrides_file: Path | None = None,
) -> Decimal | None:
    """Batch cost of one result in USD, or None when the model's price is unknown."""
    price = price_of(provider, model, overrides_file)
    if price is None:
        log.debug("no price for %s model %r", provider, model)
        return None
    return cost_of(price, input_tokens, cached_tokens, output_tokens)


def cost_of(price: ModelPrice, input_tokens: int, cached_tokens: int, output_tokens: int) -> Decimal:
    """Cost in USD at a price already looked up (ingest looks it up once per file, not per line)."""
    cached = max(0, min(cached_tokens, input_tokens))
    cached_price = price.input if price.cached_input is None else price.cached_input
    total = (
        Decimal(input_tokens - cached) * price.input
        + Decimal(cached) * cached_price
        + Decimal(output_tokens) * price.output
    )
    return total / _MILLION


def stored_cost(price: ModelPrice) -> Callable[[int, int, int], Decimal]:
    """`cost_of` at `price` as the results table stores it (rounded half up to COST_SCALE places):
    a function of (input, cached, output) tokens, made once per file and called once per result.

    When every price is a whole number of 1e-10 USD per token (at most 4 decimal places per 1M
    tokens, as every price in `prices.json` is), the cost is integer arithmetic, exact and 2-4x
    faster than Decimal; otherwise it is `cost_of`, rounded."""
    cached_price = price.input if price.cached_input is None else price.cached_input
    units = [p * _UNITS_PER_MILLION for p in (price.input, cached_price, price.output)]
    if not all(u == u.to_integral_value() for u in units):

        def rounded(input_tokens: int, cached_tokens: int, output_tokens: int) -> Decimal:
            exact = cost_of(price, input_tokens, cached_tokens, output_tokens)
            return exact.quantize(_QUANTUM, ROUND_HALF_UP)

        return rounded
    per_input, per_cached, per_output = (int(u) for u in units)

    def integral(input_tokens: int, cached_tokens: int, output_tokens: int) -> Decimal:
        cached = max(0, min(cached_tokens, input_tokens))
        total = (input_tokens - cached) * per_input + cached * per_cached + output_tokens * per_output
        return Decimal(total).scaleb(-COST_SCALE)

    return integral

"""What a batch will cost before anything is sent: the `max_cost_usd` guard and `submit --dry-run`.

The estimate is deliberately simple and errs high, because it guards a budget:
- input tokens: about one token per `BYTES_PER_TOKEN` bytes of each request's body as sent (the
  JSON around the text counts too, so real prompts come out a little lower);
- output tokens: each request's own cap (OpenAI `max_completion_tokens` / `max_tokens` /
  `max_output_tokens`, Anthropic `max_tokens`, Gemini `generationConfig.maxOutputTokens`); a request
  without one counts `UNCAPPED_OUTPUT_TOKENS`; embeddings produce none;
- cost: at the model's batch price (durabatch/providers/prices.py); the low end bills the input
  only, the high end every request's cap as well. The guard compares the high end.

The staging activity, the CLI's and `BatchClient`'s client-side staging, and `--dry-run` all fill
one `CostEstimate` as the request validator reads each line, so they agree on the same file.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from durabatch.providers.prices import ModelPrice, cost_of

__all__ = [
    "BYTES_PER_TOKEN",
    "UNCAPPED_OUTPUT_TOKENS",
    "CostEstimate",
    "CostRange",
    "max_output_of",
]

BYTES_PER_TOKEN = 4
#: What a request without an output cap counts as: a long answer, so a budget is not undercounted.
UNCAPPED_OUTPUT_TOKENS = 4096
#: A cap past this is a typo or hostile; it counts as this many (no request answers more).
_MAX_CAP = 1_000_000

#: Where each provider's request body holds its output cap, in order of precedence.
_CAP_PATHS: dict[str, tuple[tuple[str, ...], ...]] = {
    "openai": (("max_completion_tokens",), ("max_tokens",), ("max_output_tokens",)),
    "anthropic": (("max_tokens",),),
    "gemini": (("generationConfig", "maxOutputTokens"), ("generation_config", "max_output_tokens")),
}


def max_output_of(provider: str, endpoint: str, body: dict[str, Any]) -> int | None:
    """The output cap a request body sets (0 for embeddings), or None when it sets none."""
    if endpoint.endswith("/embeddings"):
        return 0
    for path in _CAP_PATHS.get(provider, ()):
        value: Any = body
        for key in path:
            value = value.get(key) if isinstance(value, dict) else None
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            return min(value, _MAX_CAP)
    return None


@dataclass(frozen=True)
class CostRange:
    low_usd: Decimal
    high_usd: Decimal


@dataclass
class CostEstimate:
    """Token totals of a batch's requests, filled one request at a time."""

    requests: int = 0
    input_tokens: int = 0
    max_output_tokens: int = 0
    #: requests without an output cap (each counted as UNCAPPED_OUTPUT_TOKENS)
    uncapped: int = 0

    def add(self, provider: str, endpoint: str, body: dict[str, Any], byte_size: int) -> None:
        self.requests += 1
        self.input_tokens += -(-byte_size // BYTES_PER_TOKEN)
        cap = max_output_of(provider, endpoint, body)
        if cap is None:
            self.uncapped += 1
            cap = UNCAPPED_OUTPUT_TOKENS
        self.max_output_tokens += cap

    def cost(self, price: ModelPrice | None) -> CostRange | None:
        """At the model's batch price; None when no price is known for the model."""
        if price is None:
            return None
        low = cost_of(price, self.input_tokens, 0, 0)
        return CostRange(low, low + cost_of(price, 0, 0, self.max_output_tokens))

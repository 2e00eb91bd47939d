"""Shards split exactly at each provider's documented limits and at a batch's own caps: a batch at
a limit is one provider batch, one past it is two; a shard full to the byte limit still fits the
provider's documented size once every line carries its envelope; a request no shard can hold is
refused, naming its line."""

from __future__ import annotations

import json

import pytest

from durabatch.providers.base import ProviderLimits
from durabatch.providers.formats import OPENAI_ENDPOINTS
from durabatch.providers.jsonl import dumps_line
from durabatch.requests_file import (
    DEFAULT_LIMITS,
    InvalidRequestLine,
    RequestsValidator,
    ShardPlanner,
    capped,
)

MIB = 1024 * 1024
#: docs/providers.md: requests and bytes one provider batch may hold (Gemini documents no count;
#: durabatch keeps its batches to 100,000 requests)
DOCUMENTED = {
    "openai": (50_000, 200 * MIB),  # per input file
    "anthropic": (100_000, 256 * MIB),  # per create request body
    "gemini": (100_000, 2_000_000_000),  # input file "up to 2 GB", read as the smaller 10^9
}
#: the longest custom_id each provider takes, at its longest on the wire: 64 characters that JSON
#: must escape as \u00XX (Anthropic allows only letters, digits, '-' and '_')
LONGEST_ID = {"openai": "\x01" * 64, "anthropic": "a" * 64, "gemini": "\x01" * 64}


def envelope_bytes(provider: str, custom_id: str) -> int:
    """Bytes one request's line adds to its body on the wire, as the provider clients frame it
    (durabatch/providers/*.py `_upload` / `_create_body`): OpenAI and Gemini JSONL lines, Anthropic
    one element of `{"requests": [...]}` and its comma."""
    if provider == "openai":
        endpoint = max(OPENAI_ENDPOINTS, key=len)
        line = {"custom_id": custom_id, "method": "POST", "url": endpoint, "body": {}}
        return len(dumps_line(line)) - len(b"{}")
    if provider == "anthropic":
        return len(dumps_line({"custom_id": custom_id, "params": {}})) - len(b"{}\n") + len(b",")
    return len(dumps_line({"key": custom_id, "request": {}})) - len(b"{}")


def shard_sizes(limits: ProviderLimits, sizes: list[int]) -> list[tuple[int, int]]:
    planner = ShardPlanner(limits)
    for size in sizes:
        planner.assign(size)
    return [(p.request_count, p.byte_size) for p in planner.plans]


@pytest.mark.parametrize("provider", sorted(DEFAULT_LIMITS))
def test_at_and_one_past_the_request_count_limit(provider: str) -> None:
    limit = DEFAULT_LIMITS[provider].max_requests
    assert shard_sizes(DEFAULT_LIMITS[provider], [10] * limit) == [(limit, 10 * limit)]
    assert shard_sizes(DEFAULT_LIMITS[provider], [10] * (limit + 1)) == [(limit, 10 * limit), (1, 10)]


def test_the_request_count_limits_are_the_documented_ones() -> None:
    assert {p: limits.max_requests for p, limits in DEFAULT_LIMITS.items()} == {
        p: count for p, (count, _) in DOCUMENTED.items()
    }


@pytest.mark.parametrize("provider", sorted(DEFAULT_LIMITS))
def test_at_and_one_past_the_byte_limit(provider: str) -> None:
    limits = DEFAULT_LIMITS[provider]
    line = limits.max_line_bytes // 2
    count, rest = divmod(limits.max_bytes, line)
    exact = [line] * count + ([rest] if rest else [])
    assert shard_sizes(limits, exact) == [(len(exact), limits.max_bytes)]
    assert shard_sizes(limits, [*exact, 1]) == [(len(exact), limits.max_bytes), (1, 1)]
    # the line that would cross the limit by one byte starts the next shard whole
    assert shard_sizes(limits, [*exact[:-1], exact[-1] + 1]) == [
        (len(exact) - 1, limits.max_bytes - exact[-1]),
        (1, exact[-1] + 1),
    ]


@pytest.mark.parametrize("provider", sorted(DEFAULT_LIMITS))
def test_a_full_shard_fits_the_documented_size_on_the_wire(provider: str) -> None:
    """The byte limit counts request bodies; the provider counts the whole upload. A shard full in
    both count and bytes, every line with the longest custom_id, still fits."""
    limits = DEFAULT_LIMITS[provider]
    documented_count, documented_bytes = DOCUMENTED[provider]
    longest = LONGEST_ID[provider]
    # the validator takes that custom_id (or the worst case assumed here is not the worst)
    endpoint = "/v1/chat/completions" if provider == "openai" else next(iter(limits.endpoints))
    validator = RequestsValidator(provider, endpoint, "m")
    key = "key" if provider == "gemini" else "custom_id"
    body = "request" if provider == "gemini" else "params" if provider == "anthropic" else "body"
    line = {
        key: longest,
        body: {"contents": []} if provider == "gemini" else {"messages": [], "max_tokens": 1},
    }
    if provider == "openai":
        line.update(method="POST", url="/v1/chat/completions")
    validator.feed(1, json.dumps(line).encode())
    framing = len(b'{"requests":[]}') if provider == "anthropic" else 0
    wire = limits.max_bytes + documented_count * envelope_bytes(provider, longest) + framing
    assert wire <= documented_bytes, f"{provider}: {wire - documented_bytes} bytes over"


def test_a_batch_s_own_caps_split_below_the_provider_s_limits() -> None:
    limits = capped(DEFAULT_LIMITS["openai"], 10, 1000)
    assert (limits.max_requests, limits.max_bytes) == (10, 1000)
    assert shard_sizes(limits, [10] * 10) == [(10, 100)]
    assert shard_sizes(limits, [10] * 11) == [(10, 100), (1, 10)]
    assert shard_sizes(limits, [100] * 10) == [(10, 1000)]
    assert shard_sizes(limits, [100] * 10 + [1]) == [(10, 1000), (1, 1)]
    # a cap never raises a provider's limit
    assert capped(DEFAULT_LIMITS["openai"], 10**9, None).max_requests == DEFAULT_LIMITS["openai"].max_requests


def test_both_caps_at_once_split_at_whichever_comes_first() -> None:
    limits = capped(DEFAULT_LIMITS["anthropic"], 3, 1024)
    # three lines that fill the byte cap exactly: one shard; a fourth line of one byte: two
    assert shard_sizes(limits, [512, 256, 256]) == [(3, 1024)]
    assert shard_sizes(limits, [512, 256, 256, 1]) == [(3, 1024), (1, 1)]
    # the count cap comes first; then the byte cap, a line landing exactly on it
    assert shard_sizes(limits, [1, 1, 1, 1000, 24, 1]) == [(3, 3), (2, 1024), (1, 1)]


def _line(custom_id: str, text: str) -> bytes:
    return json.dumps(
        {
            "custom_id": custom_id,
            "params": {"model": "m", "max_tokens": 1, "messages": [{"role": "user", "content": text}]},
        }
    ).encode()


def test_a_request_larger_than_the_byte_cap_is_refused_naming_its_line() -> None:
    limits = capped(DEFAULT_LIMITS["anthropic"], None, 1024)
    validator = RequestsValidator("anthropic", "/v1/messages", None, limits)
    first = validator.feed(1, _line("a", "x"))
    assert first is not None
    # a line of exactly the cap fits a shard of its own
    exact = validator.feed(2, _line("b", "x" * (1024 - first.byte_size + 1)))
    assert exact is not None and exact.byte_size == 1024 and exact.shard == 1
    with pytest.raises(InvalidRequestLine) as refused:
        validator.feed(3, _line("c", "x" * (1024 - first.byte_size + 2)))
    assert refused.value.line_no == 3
    assert "1025 bytes" in refused.value.reason and "max_bytes_per_shard of 1024" in refused.value.reason

"""Shards split exactly at each provider's documented limits and at a batch's own caps: a batch at
a limit is one provider batch, one past it is two."""

from __future__ import annotations

import pytest

from durabatch.providers.base import ProviderLimits
from durabatch.requests_file import DEFAULT_LIMITS, ShardPlanner, capped


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


@pytest.mark.parametrize("provider", sorted(DEFAULT_LIMITS))
def test_at_and_one_past_the_byte_limit(provider: str) -> None:
    limits = DEFAULT_LIMITS[provider]
    line = limits.max_line_bytes // 2
    count, rest = divmod(limits.max_bytes, line)
    exact = [line] * count + ([rest] if rest else [])
    assert len(shard_sizes(limits, exact)) == 1
    assert shard_sizes(limits, [*exact, 1])[-1] == (1, 1)


def test_a_batch_s_own_caps_split_below_the_provider_s_limits() -> None:
    limits = capped(DEFAULT_LIMITS["openai"], 10, 1000)
    assert (limits.max_requests, limits.max_bytes) == (10, 1000)
    assert shard_sizes(limits, [10] * 10) == [(10, 100)]
    assert shard_sizes(limits, [10] * 11) == [(10, 100), (1, 10)]
    assert shard_sizes(limits, [100] * 10) == [(10, 1000)]
    assert shard_sizes(limits, [100] * 10 + [1]) == [(10, 1000), (1, 1)]
    # a cap never raises a provider's limit
    assert capped(DEFAULT_LIMITS["openai"], 10**9, None).max_requests == DEFAULT_LIMITS["openai"].max_requests

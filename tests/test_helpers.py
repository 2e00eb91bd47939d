"""The shared wait helper: it returns the first value that satisfies `done`, and a timeout names the
last value seen (what a red test needs to say)."""

from __future__ import annotations

import itertools

import pytest

from tests.helpers import NeverHappened, eventually, eventually_sync


async def test_eventually_returns_the_first_value_that_is_done() -> None:
    counter = itertools.count()

    async def fetch() -> int:
        return next(counter)

    assert await eventually(fetch, lambda n: n >= 3, timeout=5, interval=0.001) == 3


async def test_eventually_times_out_naming_the_last_value() -> None:
    async def fetch() -> dict[str, str]:
        return {"status": "in_progress"}

    with pytest.raises(NeverHappened) as info:
        await eventually(
            fetch, lambda s: s["status"] == "completed", timeout=0.05, interval=0.01, what="done"
        )
    message = str(info.value)
    assert message.startswith("done not met within 0.05s")
    assert "{'status': 'in_progress'}" in message


def test_eventually_sync_polls_and_times_out_the_same_way() -> None:
    counter = itertools.count()
    assert eventually_sync(lambda: next(counter), lambda n: n == 2, timeout=5, interval=0.001) == 2
    with pytest.raises(NeverHappened, match=r"last value: 'never'"):
        eventually_sync(lambda: "never", lambda v: v == "yes", timeout=0.02, interval=0.005)

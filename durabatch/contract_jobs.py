"""The contract's fields for large jobs and shared accounts: retry rounds, real time, the
deadline, shard caps, the cost limit, priority and tenant. `durabatch/contract.py` applies these
checks and exports the bounds; they are here so that each module keeps to one job.

Pure: workflow code runs them.
"""

from __future__ import annotations

import math

from durabatch.budget import MAX_COST_USD
from durabatch.contract_checks import fail as _fail
from durabatch.contract_checks import seconds as _seconds
from durabatch.contract_checks import text as _text
from durabatch.models import RealtimeLimits

__all__ = [
    "DEFAULT_MAX_ROUNDS",
    "MAX_POLL_STRETCH",
    "MAX_REALTIME_CONCURRENCY",
    "MAX_REALTIME_RATE",
    "MAX_ROUNDS",
    "MAX_SHARD_CAP",
    "MIN_SHARD_BYTES",
    "MODES",
    "PRIORITY_RANGE",
    "TENANT_MAX_CHARS",
    "cap",
    "deadline",
    "max_cost",
    "max_rounds",
    "mode",
    "priority",
    "realtime",
    "stretch",
    "tenant",
]

#: Temporal's task priorities durabatch uses: 1 runs first; unset means 3 (the middle).
#: Temporal's task priorities durabatch uses: 1 runs first; unset means 3 (the middle).
PRIORITY_RANGE = (1, 5)
TENANT_MAX_CHARS = 64
DEFAULT_MAX_ROUNDS = 2
MAX_ROUNDS = 10
MODES = ("batch", "realtime")
#: requests in flight at once in real time, and the rates it may be given
#: requests in flight at once in real time, and the rates it may be given
MAX_REALTIME_CONCURRENCY = 256
MAX_REALTIME_RATE = 100_000_000
MAX_POLL_STRETCH = 100.0
#: bounds of the per-shard caps (a provider's own limits still apply below them)
#: bounds of the per-shard caps (a provider's own limits still apply below them)
MIN_SHARD_BYTES = 1024
MAX_SHARD_CAP = 10**12


def cap(name: str, value: int | None, low: int) -> int | None:
    if value is not None and not low <= value <= MAX_SHARD_CAP:
        raise _fail(name, f"must be an integer from {low} to {MAX_SHARD_CAP}, got {value!r}")
    return value


def stretch(value: float | None) -> float:
    if value is not None and not (math.isfinite(value) and 1 <= value <= MAX_POLL_STRETCH):
        raise _fail("push_poll_stretch", f"must be a number from 1 to {MAX_POLL_STRETCH:g}, got {value!r}")
    return 1.0 if value is None else float(value)


def mode(value: str | None) -> str:
    if value is not None and value not in MODES:
        raise _fail("mode", f"must be one of {', '.join(MODES)}, got {value!r}")
    return value or "batch"


def realtime(value: RealtimeLimits | None) -> RealtimeLimits:
    limits = value or RealtimeLimits()
    for name, high in (
        ("concurrency", MAX_REALTIME_CONCURRENCY),
        ("rpm", MAX_REALTIME_RATE),
        ("tpm", MAX_REALTIME_RATE),
    ):
        got = getattr(limits, name)
        if got is not None and not 1 <= got <= high:
            raise _fail(f"realtime.{name}", f"must be an integer from 1 to {high}, got {got!r}")
    return limits


def deadline(value: float | None, max_age: float) -> float | None:
    if value is None:
        return None
    seconds = _seconds("deadline_seconds", value, low=0, high=max_age, low_open=True)
    if seconds >= max_age:
        raise _fail(
            "deadline_seconds", f"must be shorter than max_age_seconds ({max_age:g}), got {seconds:g}"
        )
    return seconds


def max_cost(value: float | None) -> float | None:
    if value is not None and not (math.isfinite(value) and 0 < value <= MAX_COST_USD):
        raise _fail(
            "max_cost_usd", f"must be a number of US dollars in (0, {MAX_COST_USD:.0f}], got {value!r}"
        )
    return value


def priority(value: int | None) -> int | None:
    if value is not None and not PRIORITY_RANGE[0] <= value <= PRIORITY_RANGE[1]:
        raise _fail("priority", f"must be an integer from 1 (first) to 5 (last), got {value!r}")
    return value


def max_rounds(value: int | None) -> int:
    if value is not None and not 1 <= value <= MAX_ROUNDS:
        raise _fail("max_rounds", f"must be an integer from 1 (no retry) to {MAX_ROUNDS}, got {value!r}")
    return DEFAULT_MAX_ROUNDS if value is None else value


def tenant(value: str | None) -> str | None:
    if value is not None and not value.strip():
        raise _fail("tenant", "must not be empty; leave it out for no fairness key")
    return _text("tenant", value, TENANT_MAX_CHARS)

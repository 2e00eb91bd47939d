"""The client side of a provider's rate limits: requests and tokens per minute, and waits the
provider asked for.

Each limit is a token bucket that refills at `limit / 60` per second and holds one second of it
(at least one call), so calls go out evenly instead of in a burst that the provider's own window
would refuse. A call larger than the bucket (a long prompt under a small TPM) waits for a full
bucket and leaves it in debt, so it is never refused forever. `pause` holds every later call until
an instant: the provider's `Retry-After`, or the reset of a limit its headers say is used up
(`observe`). Calls are admitted in arrival order.
"""

from __future__ import annotations

import asyncio
import email.utils
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime

__all__ = ["CallLimits", "RateLimiter", "parse_reset"]


@dataclass(frozen=True)
class CallLimits:
    """How hard a real-time run may press a provider: calls in flight, calls and tokens per minute."""

    concurrency: int = 8
    rpm: int | None = None
    tpm: int | None = None

    def __post_init__(self) -> None:
        if self.concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        for name, value in (("rpm", self.rpm), ("tpm", self.tpm)):
            if value is not None and value < 1:
                raise ValueError(f"{name} must be at least 1 (or unset)")


class _Bucket:
    def __init__(self, per_minute: int, now: float) -> None:
        self.rate = per_minute / 60.0
        self.capacity = max(1.0, self.rate)
        self.level = self.capacity
        self.at = now

    def refill(self, now: float) -> None:
        self.level = min(self.capacity, self.level + (now - self.at) * self.rate)
        self.at = now

    def wait_for(self, amount: float) -> float:
        """Seconds until `amount` (at most a full bucket) is there; 0 when it is."""
        need = min(amount, self.capacity)
        return 0.0 if self.level >= need else (need - self.level) / self.rate


class RateLimiter:
    """Requests and tokens per minute for one provider, shared by every call of a run."""

    def __init__(
        self,
        rpm: int | None = None,
        tpm: int | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._clock = clock
        now = clock()
        self._requests = _Bucket(rpm, now) if rpm else None
        self._tokens = _Bucket(tpm, now) if tpm else None
        self._paused_until = 0.0
        self._lock = asyncio.Lock()

    @property
    def paused_until(self) -> float:
        """The clock instant before which no call is admitted."""
        return self._paused_until

    def pause(self, seconds: float) -> None:
        """Admit no call for `seconds` from now (a later pause never shortens an earlier one)."""
        self._paused_until = max(self._paused_until, self._clock() + max(0.0, seconds))

    def adjust(self, tokens: int) -> None:
        """Charge (or refund, when negative) tokens once a call's real usage is known."""
        if self._tokens is not None:
            self._tokens.level = min(self._tokens.capacity, self._tokens.level - tokens)

    async def acquire(self, tokens: int = 0) -> None:
        """Wait until one call of about `tokens` tokens may be sent, and count it."""
        async with self._lock:
            while True:
                now = self._clock()
                wait = self._paused_until - now
                for bucket, amount in ((self._requests, 1.0), (self._tokens, float(tokens))):
                    if bucket is not None:
                        bucket.refill(now)
                        wait = max(wait, bucket.wait_for(amount))
                if wait <= 0:
                    break
                await asyncio.sleep(wait)
            if self._requests is not None:
                self._requests.level -= 1.0
            if self._tokens is not None:
                self._tokens.level -= tokens

    def observe(self, headers: Mapping[str, str]) -> None:
        """Pause until the reset of any limit the provider reports used up (OpenAI
        `x-ratelimit-remaining-*` / `x-ratelimit-reset-*`, Anthropic `anthropic-ratelimit-*`)."""
        lowered = {k.lower(): v for k, v in headers.items()}
        for kind in ("requests", "tokens"):
            for remaining_key, reset_key in (
                (f"x-ratelimit-remaining-{kind}", f"x-ratelimit-reset-{kind}"),
                (f"anthropic-ratelimit-{kind}-remaining", f"anthropic-ratelimit-{kind}-reset"),
            ):
                remaining = lowered.get(remaining_key)
                if remaining is None or remaining.strip() != "0":
                    continue
                reset = parse_reset(lowered.get(reset_key, ""))
                if reset is not None:
                    self.pause(reset)


_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")
_SECONDS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}


def parse_reset(value: str, now: float | None = None) -> float | None:
    """Seconds until a limit resets: OpenAI's duration (`1s`, `6m0s`, `250ms`) or Anthropic's
    RFC 3339 instant; None when the value is neither."""
    text = value.strip()
    if not text:
        return None
    parts = _DURATION_PART.findall(text)
    if parts and "".join(n + u for n, u in parts) == text:
        return sum(float(n) * _SECONDS[u] for n, u in parts)
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError):
            return None
    if when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))

"""The real-time endpoints' rate limits: requests and tokens per window, per provider.

A sliding window (a log of the calls admitted in the last `window` seconds of the emulator's clock,
so `POST /_emulator/clock/advance` moves it too): a call is admitted when the window holds fewer
than `rpm` calls and its tokens fit in what is left of `tpm`. A call larger than the whole token
limit is admitted into an empty window, so that no request can be refused forever. Refused calls
are not logged: they cost the client nothing but the wait, as with the real providers.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

__all__ = ["Decision", "RealtimeLimiter"]


@dataclass(frozen=True)
class Decision:
    """What the limiter said about one call, with what the rate-limit headers report."""

    allowed: bool
    #: which limit refused the call ("requests" or "tokens"); None when allowed
    refused_by: str | None
    limit_requests: int | None
    remaining_requests: int
    #: seconds until the request window has room for one more call
    reset_requests: float
    limit_tokens: int | None
    remaining_tokens: int
    #: seconds until the token window has room for this call
    reset_tokens: float

    @property
    def retry_after(self) -> float:
        """Seconds until the refused call would be admitted."""
        return self.reset_tokens if self.refused_by == "tokens" else self.reset_requests

    @property
    def retry_after_header(self) -> str:
        # whole seconds, rounded up, never 0: a client that waits this long finds room
        return str(max(1, math.ceil(self.retry_after)))


class RealtimeLimiter:
    """Per-provider windows of admitted calls: (time, tokens), oldest first."""

    def __init__(self) -> None:
        self._log: dict[str, deque[tuple[float, int]]] = {}

    def clear(self) -> None:
        self._log.clear()

    def admit(
        self, provider: str, tokens: int, *, now: float, rpm: int | None, tpm: int | None, window: float
    ) -> Decision:
        """Admit (and log) one call of `tokens` at `now`, or refuse it, under the given limits."""
        log = self._log.setdefault(provider, deque())
        while log and log[0][0] <= now - window:
            log.popleft()
        used_tokens = sum(t for _, t in log)
        requests_full = rpm is not None and len(log) >= rpm
        tokens_full = tpm is not None and bool(log) and used_tokens + tokens > tpm
        refused_by = "requests" if requests_full else "tokens" if tokens_full else None
        if refused_by is None:
            log.append((now, tokens))
            used_tokens += tokens
        return Decision(
            allowed=refused_by is None,
            refused_by=refused_by,
            limit_requests=rpm,
            remaining_requests=max(0, (rpm or 0) - len(log)) if rpm is not None else 0,
            reset_requests=self._reset_requests(log, now, rpm, window),
            limit_tokens=tpm,
            remaining_tokens=max(0, (tpm or 0) - used_tokens) if tpm is not None else 0,
            reset_tokens=self._reset_tokens(log, now, tpm, tokens, window),
        )

    @staticmethod
    def _reset_requests(log: deque[tuple[float, int]], now: float, rpm: int | None, window: float) -> float:
        if rpm is None or len(log) < rpm:
            return 0.0
        # room for one more once the call that fills the limit, counted from the newest, leaves
        return max(0.0, log[len(log) - rpm][0] + window - now)

    @staticmethod
    def _reset_tokens(
        log: deque[tuple[float, int]], now: float, tpm: int | None, tokens: int, window: float
    ) -> float:
        if tpm is None:
            return 0.0
        used = sum(t for _, t in log)
        if used + tokens <= tpm:
            return 0.0
        for at, spent in log:
            used -= spent
            # once this call leaves the window its tokens are free again
            if used + tokens <= tpm or used == 0:
                return max(0.0, at + window - now)
        return 0.0

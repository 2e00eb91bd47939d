"""The emulator's clock: wall time plus a skip offset that tests can move forward."""

from __future__ import annotations

import time

__all__ = ["Clock"]


class Clock:
    """`now()` is unix seconds; `advance()` makes every batch see time jump at once.

    Progress is computed from this clock on each request, never by background tasks, so
    thousands of idle batches cost nothing.
    """

    def __init__(self) -> None:
        self._offset = 0.0

    def now(self) -> float:
        return time.time() + self._offset

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("the clock only moves forward")
        self._offset += seconds

    @property
    def offset(self) -> float:
        return self._offset

    def reset(self) -> None:
        self._offset = 0.0

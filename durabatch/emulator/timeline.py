"""A batch's life as a function of the clock: phases, processed count, holds and forced moves.

Nothing runs in the background. `refresh(now)` replays every transition that should have
happened up to `now`, stamping each at the instant it was due, so a batch polled once a day and
one polled every millisecond report the same history.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import StrEnum

__all__ = ["TERMINAL", "Phase", "Timeline"]


class Phase(StrEnum):
    VALIDATING = "validating"
    RUNNING = "in_progress"
    FINALIZING = "finalizing"
    CANCELLING = "cancelling"
    COMPLETED = "completed"
    FAILED = "failed"
    EXPIRED = "expired"
    CANCELLED = "cancelled"


TERMINAL = frozenset({Phase.COMPLETED, Phase.FAILED, Phase.EXPIRED, Phase.CANCELLED})


@dataclass
class Timeline:
    """Progress of one batch of `n` requests processed in input order."""

    created_at: float
    n: int
    validating_s: float
    per_request_s: float
    finalizing_s: float
    expire_after_s: float
    #: the batch fails when validation ends (bad input, token limit)
    fail_validation: bool = False
    #: finalizing never ends on its own, so the batch expires from there
    stuck_finalizing: bool = False
    phase: Phase = Phase.VALIDATING
    phase_started: float = 0.0
    #: requests finished when the current phase began (frozen outside RUNNING)
    base_processed: int = 0
    expires_at: float = 0.0
    held_since: float | None = None
    entered: dict[Phase, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.phase_started = self.created_at
        self.expires_at = self.created_at + self.expire_after_s
        self.entered[Phase.VALIDATING] = self.created_at

    @property
    def terminal(self) -> bool:
        return self.phase in TERMINAL

    def processed_at(self, t: float) -> int:
        """Requests finished at time `t` (only meaningful for t in the current phase)."""
        if self.phase != Phase.RUNNING:
            return self.base_processed
        if self.per_request_s <= 0:
            return self.n
        done = math.floor((t - self.phase_started) / self.per_request_s + 1e-9)
        return max(self.base_processed, min(self.n, self.base_processed + done))

    def processed(self, now: float) -> int:
        self.refresh(now)
        return self.processed_at(self._effective(now))

    def _effective(self, now: float) -> float:
        return now if self.held_since is None else min(now, self.held_since)

    def _phase_end(self) -> float:
        p = self.phase
        if p == Phase.VALIDATING:
            return self.phase_started + self.validating_s
        if p == Phase.RUNNING:
            return self.phase_started + (self.n - self.base_processed) * self.per_request_s
        if p == Phase.FINALIZING:
            return math.inf if self.stuck_finalizing else self.phase_started + self.finalizing_s
        if p == Phase.CANCELLING:
            return self.phase_started + self.finalizing_s
        return math.inf

    def _enter(self, phase: Phase, at: float, processed: int) -> None:
        self.phase = phase
        self.phase_started = at
        self.base_processed = processed
        self.entered[phase] = at

    def refresh(self, now: float) -> None:
        now = self._effective(now)
        while not self.terminal:
            end = self._phase_end()
            if now < min(end, self.expires_at):
                return
            if self.expires_at <= end and self.phase != Phase.CANCELLING:
                self._enter(Phase.EXPIRED, self.expires_at, self.processed_at(self.expires_at))
            elif self.phase == Phase.VALIDATING:
                nxt = Phase.FAILED if self.fail_validation else Phase.RUNNING
                self._enter(nxt, end, 0)
            elif self.phase == Phase.RUNNING:
                self._enter(Phase.FINALIZING, end, self.n)
            elif self.phase == Phase.FINALIZING:
                self._enter(Phase.COMPLETED, end, self.n)
            else:
                self._enter(Phase.CANCELLED, end, self.base_processed)

    def cancel(self, now: float) -> bool:
        """Start cancelling; False when the batch is already terminal."""
        self.refresh(now)
        if self.terminal:
            return False
        if self.phase != Phase.CANCELLING:
            self._enter(Phase.CANCELLING, self._effective(now), self.processed_at(self._effective(now)))
        return True

    def cancel_now(self, now: float) -> bool:
        """Cancel with no draining period (Gemini's jobs go straight to CANCELLED)."""
        if not self.cancel(now):
            return False
        self._enter(Phase.CANCELLED, self._effective(now), self.base_processed)
        return True

    def hold(self, now: float) -> None:
        self.refresh(now)
        if self.held_since is None:
            self.held_since = now

    def release(self, now: float) -> None:
        if self.held_since is None:
            return
        paused = max(0.0, now - self.held_since)
        self.held_since = None
        # Time spent held did not happen for this batch: shift every pending deadline.
        self.phase_started += paused
        self.expires_at += paused
        self.refresh(now)

    def skip(self, seconds: float, now: float) -> None:
        """Make this batch alone behave as if `seconds` more had passed."""
        self.refresh(now)
        self.phase_started -= seconds
        self.expires_at -= seconds
        held = self.held_since
        self.held_since = None
        self.refresh(now)
        self.held_since = None if held is None else now

    def force(self, phase: Phase, now: float) -> None:
        """Move to `phase` at once (admin). Entering a phase past RUNNING finishes the requests
        that would have finished anyway: all for FINALIZING/COMPLETED, the current count for the
        others."""
        self.refresh(now)
        at = self._effective(now)
        current = self.processed_at(at)
        if phase == Phase.VALIDATING:
            self._enter(phase, at, 0)
        elif phase == Phase.RUNNING:
            self._enter(phase, at, current)
        elif phase in (Phase.FINALIZING, Phase.COMPLETED):
            self.stuck_finalizing = self.stuck_finalizing and phase == Phase.FINALIZING
            self._enter(phase, at, self.n)
        elif phase == Phase.FAILED:
            self._enter(phase, at, 0)
        else:
            self._enter(phase, at, current)

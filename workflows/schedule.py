"""Poll schedule arithmetic: pure functions, safe inside workflow code."""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["JITTER_FRACTION", "STRETCH_AFTER_POLLS", "poll_delay"]

#: Each sleep is stretched or shrunk by up to this fraction so thousands of batches started at
#: once do not poll the provider in lockstep.
JITTER_FRACTION = 0.05


#: With a stretch, the first polls keep the schedule's delays (a quick batch is seen quickly).
STRETCH_AFTER_POLLS = 2


def poll_delay(schedule: Sequence[float], poll_index: int, unit_random: float, stretch: float = 1.0) -> float:
    """Seconds to sleep before poll number `poll_index` (0-based): the schedule's entry, the last
    one repeating, jittered by `unit_random` in [0, 1) (pass `workflow.random().random()`), and
    from the third poll on multiplied by `stretch` (a batch that provider webhooks or the
    account sweep wake up polls only as a safety net)."""
    if not schedule:
        raise ValueError("poll schedule must not be empty")
    base = schedule[min(poll_index, len(schedule) - 1)]
    if poll_index >= STRETCH_AFTER_POLLS:
        base *= stretch
    return max(0.0, base * (1.0 + JITTER_FRACTION * (2.0 * unit_random - 1.0)))

"""Named activity-option presets: timeouts, heartbeats and retry policies, in one place."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import timedelta

from temporalio.common import RetryPolicy

from durabatch.contract import (
    AUTHENTICATION_FAILED,
    DEFAULT_HANDLER_ATTEMPTS,
    INVALID_INPUT,
    MAX_HANDLER_ATTEMPTS,
    NON_RETRYABLE_ERRORS,
)

__all__ = [
    "CANCEL",
    "CLAIM",
    "FINALIZE",
    "HANDLER",
    "INGEST",
    "NON_RETRYABLE",
    "POLL",
    "STAGE",
    "SUBMIT",
    "SWEEP",
    "Preset",
    "handler_preset",
]

#: ApplicationError types the activities raise for failures a retry cannot fix.
NON_RETRYABLE = list(NON_RETRYABLE_ERRORS)


@dataclass(frozen=True)
class Preset:
    start_to_close: timedelta
    retry: RetryPolicy
    heartbeat: timedelta | None = None
    #: bounds the wait for a worker too (a handler on a task queue nobody polls would wait forever)
    schedule_to_close: timedelta | None = None


#: Bounded: an unreachable requests_uri fails the batch after about ten minutes instead of
#: retrying forever (staging happens before the max-age clock is watched).
STAGE = Preset(
    start_to_close=timedelta(minutes=30),
    heartbeat=timedelta(minutes=1),
    retry=RetryPolicy(
        maximum_interval=timedelta(minutes=1), maximum_attempts=12, non_retryable_error_types=NON_RETRYABLE
    ),
)
#: Every preset has a bounded budget: an activity that can never succeed must end in a decision
#: (fail the batch with the reason), never in a retry loop that keeps the batch open.
CLAIM = Preset(
    start_to_close=timedelta(minutes=1),
    retry=RetryPolicy(
        maximum_interval=timedelta(seconds=30), maximum_attempts=20, non_retryable_error_types=NON_RETRYABLE
    ),
)
#: The interval stays short because a rate-limited attempt still counts toward the backoff even
#: when its own delay came from Retry-After; a 5-minute cap left batches idle after a 429 storm.
SUBMIT = Preset(
    start_to_close=timedelta(minutes=15),
    heartbeat=timedelta(minutes=1),
    retry=RetryPolicy(
        initial_interval=timedelta(seconds=2),
        maximum_interval=timedelta(seconds=30),
        # about an hour of 429s and outages before the batch fails naming the last error
        maximum_attempts=120,
        non_retryable_error_types=NON_RETRYABLE,
    ),
)
#: A poll that keeps failing is given up after a few tries; the workflow simply polls again later,
#: so a provider outage is waited out on the poll schedule rather than in a tight retry loop.
POLL = Preset(
    start_to_close=timedelta(minutes=1),
    retry=RetryPolicy(
        initial_interval=timedelta(seconds=1),
        maximum_interval=timedelta(seconds=30),
        maximum_attempts=3,
        non_retryable_error_types=NON_RETRYABLE,
    ),
)
#: An account sweep that keeps failing is given up like a poll: the next sweep comes on the cadence,
#: and every batch still has its own safety poll meanwhile. The sweep is the wake-up of every batch
#: on the account, and the next one waits for it: a sweep of a dead worker is handed to another
#: within seconds (the activity heartbeats every 3 s, activities/sweep.py), not a minute.
SWEEP = Preset(
    start_to_close=timedelta(minutes=10),
    heartbeat=timedelta(seconds=10),
    retry=RetryPolicy(
        initial_interval=timedelta(seconds=1),
        maximum_interval=timedelta(seconds=30),
        maximum_attempts=3,
        non_retryable_error_types=NON_RETRYABLE,
    ),
)
INGEST = Preset(
    start_to_close=timedelta(hours=2),
    heartbeat=timedelta(minutes=1),
    retry=RetryPolicy(
        initial_interval=timedelta(seconds=1),
        maximum_interval=timedelta(minutes=2),
        # about two hours: past it the shard's requests are failed with the reason
        maximum_attempts=60,
        non_retryable_error_types=[AUTHENTICATION_FAILED],
    ),
)
#: A shard run through the synchronous API: as long as its rate limit needs (heartbeats show it
#: alive; a retry resumes it, never re-sending a request that has a result).
REALTIME = Preset(
    start_to_close=timedelta(hours=24),
    # short: a cancel reaches the activity with its next heartbeat, and a dead worker's chunk
    # resumes elsewhere after this long (the activity beats every 5 s even while it waits)
    heartbeat=timedelta(seconds=15),
    retry=RetryPolicy(
        initial_interval=timedelta(seconds=2),
        maximum_interval=timedelta(minutes=2),
        maximum_attempts=10,
        non_retryable_error_types=NON_RETRYABLE,
    ),
)
#: Provider-side cancel is best effort: a failing cancel is logged and never blocks the batch.
CANCEL = Preset(
    start_to_close=timedelta(minutes=1),
    retry=RetryPolicy(initial_interval=timedelta(seconds=1), maximum_attempts=3),
)
FINALIZE = Preset(
    start_to_close=timedelta(minutes=10),
    heartbeat=timedelta(minutes=1),
    # about half an hour; a finalize that still fails closes the workflow as failed
    retry=RetryPolicy(
        initial_interval=timedelta(seconds=1), maximum_interval=timedelta(minutes=1), maximum_attempts=30
    ),
)
HANDLER = Preset(
    start_to_close=timedelta(minutes=1),
    schedule_to_close=timedelta(hours=24),
    retry=RetryPolicy(
        initial_interval=timedelta(seconds=1),
        backoff_coefficient=2.0,
        maximum_interval=timedelta(minutes=1),
        maximum_attempts=DEFAULT_HANDLER_ATTEMPTS,
        non_retryable_error_types=[INVALID_INPUT],
    ),
)


def handler_preset(max_attempts: int | None) -> Preset:
    """HANDLER with the handler's own attempt budget, when it sets one (clamped to the contract's
    1..100 so a value that slipped past validation can never make an unbounded or invalid policy)."""
    if not max_attempts:
        return HANDLER
    attempts = min(max(1, max_attempts), MAX_HANDLER_ATTEMPTS)
    return replace(HANDLER, retry=replace(HANDLER.retry, maximum_attempts=attempts))

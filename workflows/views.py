"""How a batch's state is shown: its summary, its live status, its search attributes and the Web UI
details. Pure functions of the workflow's state, so they are deterministic and easy to test."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from temporalio.common import SearchAttributeKey, SearchAttributeUpdate

from durabatch.contract import PROVIDER_LOST_BATCH, TERMINAL_BATCH_STATUSES, BatchConfig
from durabatch.models import BatchState, BatchStatus, BatchSummary, OutcomeCounts, StatusQuery

__all__ = [
    "SA_MODEL",
    "SA_PROVIDER",
    "SA_REQUESTS",
    "SA_STATUS",
    "details_markdown",
    "dollars",
    "ended_status",
    "live_counts",
    "relative_time",
    "search_attribute_updates",
    "status_of",
    "summary_of",
    "usage_so_far",
]

SA_STATUS = SearchAttributeKey.for_keyword("DurabatchStatus")
SA_PROVIDER = SearchAttributeKey.for_keyword("DurabatchProvider")
SA_MODEL = SearchAttributeKey.for_keyword("DurabatchModel")
SA_REQUESTS = SearchAttributeKey.for_int("DurabatchRequests")


def live_counts(st: BatchState) -> OutcomeCounts:
    """Counts while the batch runs (from the provider's request counts), final ones once recorded."""
    if st.totals is not None:
        return st.totals.counts
    succeeded = sum(s.succeeded for s in st.shards)
    failed = sum(s.failed for s in st.shards)
    total = st.request_count
    return OutcomeCounts(
        total=total, succeeded=succeeded, failed=failed, pending=max(0, total - succeeded - failed)
    )


def ended_status(st: BatchState) -> tuple[BatchStatus, str | None]:
    """The batch's end status once every provider batch has ended, and a failure reason if any."""
    lost = next((s for s in st.shards if s.failure_code == PROVIDER_LOST_BATCH), None)
    if lost is not None:
        return "failed", st.failure_reason or lost.failure_message
    if st.cancel_requested:
        return "cancelled", st.failure_reason
    states = {s.state for s in st.shards}
    if states and states <= {"failed"}:
        first = next((s for s in st.shards if s.failure_message), None)
        reason = st.failure_reason or (
            f"provider failed the batch: {first.failure_code}: {first.failure_message}"
            if first
            else "provider failed the batch"
        )
        return "failed", reason
    if "expired" in states:
        return "expired", st.failure_reason
    return "completed", st.failure_reason


def summary_of(cfg: BatchConfig, st: BatchState, workflow_id: str) -> BatchSummary:
    totals = st.totals
    input_tokens, output_tokens, cost = usage_so_far(st)
    return BatchSummary(
        batch_id=cfg.batch_id,
        workflow_id=workflow_id,
        status=st.status,
        provider=cfg.provider,
        endpoint=cfg.endpoint,
        model=st.model,
        counts=live_counts(st).model_copy(update={"realtime": st.realtime_requests}),
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        cached_tokens=totals.cached_tokens if totals else 0,
        cost_usd=cost,
        provider_batch_ids=[s.provider_batch_id for s in st.shards if s.provider_batch_id],
        created_at=st.started_at,
        submitted_at=totals.submitted_at if totals else None,
        ended_at=totals.ended_at if totals else None,
        failure_reason=st.failure_reason or (totals.failure_reason if totals else None),
        cancel_reason=st.cancel_reason,
        handlers=st.handlers,
        metadata=cfg.metadata,
    )


def usage_so_far(st: BatchState) -> tuple[int, int, float | None]:
    """Input tokens, output tokens and cost of the results recorded so far: final once totalled,
    else summed over the shards already ingested (cost unknown if any shard's is unknown)."""
    if st.totals is not None:
        return st.totals.input_tokens, st.totals.output_tokens, st.totals.cost_usd
    ingested = [s for s in st.shards if s.ingested]
    costs = [s.cost_usd for s in ingested]
    cost = None if not ingested or None in costs else sum(c for c in costs if c is not None)
    return sum(s.input_tokens for s in ingested), sum(s.output_tokens for s in ingested), cost


def status_of(cfg: BatchConfig, st: BatchState, next_poll_at: datetime | None) -> StatusQuery:
    input_tokens, output_tokens, cost = usage_so_far(st)
    return StatusQuery(
        batch_id=cfg.batch_id,
        status=st.status,
        provider=cfg.provider,
        model=st.model,
        counts=live_counts(st),
        shards=st.shards,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        cost_usd=cost,
        next_poll_at=next_poll_at,
        poll_count=st.poll_count,
        provider_events=st.provider_events,
        retry_rounds=st.retry_rounds,
        max_rounds=cfg.max_rounds,
        realtime_requests=st.realtime_requests,
        realtime_rpm=st.realtime_rpm,
        cancel_requested=st.cancel_requested,
        cancel_reason=st.cancel_reason,
        failure_reason=st.failure_reason,
        handlers=st.handlers,
    )


def search_attribute_updates(cfg: BatchConfig, st: BatchState) -> list[SearchAttributeUpdate[Any]]:
    """What `durabatch list`, `temporal workflow list` and the Web UI filter on."""
    updates: list[SearchAttributeUpdate[Any]] = [
        SA_STATUS.value_set(st.status),
        SA_PROVIDER.value_set(cfg.provider),
        SA_REQUESTS.value_set(st.request_count),
    ]
    if st.model:
        updates.append(SA_MODEL.value_set(st.model))
    return updates


def details_markdown(
    cfg: BatchConfig, st: BatchState, next_poll_at: datetime | None, now: datetime | None = None
) -> str:
    """The Web UI's current details of a batch (its page's "Current Details"): status, counts,
    provider, model, cost so far and when the next poll comes. `now` is the workflow's clock
    (`workflow.now()`), so the relative time is the same on every replay."""
    counts = live_counts(st)
    provider_batches = ", ".join(
        f"{s.provider_batch_id} ({s.provider_status or s.state})" for s in st.shards if s.provider_batch_id
    )
    polls = f"**polls** {st.poll_count}"
    if next_poll_at is not None and st.status not in TERMINAL_BATCH_STATUSES:
        when = f"{next_poll_at:%H:%M:%S} UTC"
        polls += (
            f" · next poll {relative_time(next_poll_at, now)} (at {when})" if now else f" · next at {when}"
        )
    lines = [
        f"**status** {st.status} · **provider** {cfg.provider} · **model** {st.model or cfg.model or '-'}",
        f"**requests** {counts.total}: {counts.succeeded} succeeded, {counts.failed} failed, "
        f"{counts.expired} expired, {counts.cancelled} cancelled, {counts.pending} pending",
        f"**cost so far** {_cost_so_far(st)}",
        f"**provider batches** {provider_batches or '-'}",
        polls,
    ]
    if cfg.mode == "realtime" or st.realtime_requests:
        rate = f" at {st.realtime_rpm:g} requests/min" if st.realtime_rpm else ""
        lines.append(f"**real time** {st.realtime_requests} finished{rate}")
    if st.retry_rounds:
        lines.append(f"**retry rounds** {st.retry_rounds} of {cfg.max_rounds - 1}")
    waiting = [s for s in st.shards if s.state == "waiting_admission"]
    for shard in waiting:
        lines.append(f"**shard {shard.shard}** {shard.admission_reason or 'waiting for admission'}")
    if st.failure_reason:
        lines.append(f"**failure** {st.failure_reason}")
    return "\n\n".join(lines)


def _cost_so_far(st: BatchState) -> str:
    input_tokens, output_tokens, cost = usage_so_far(st)
    if st.totals is None and not any(s.ingested for s in st.shards):
        return "- (no results yet)"
    tokens = f"{input_tokens:,} input + {output_tokens:,} output tokens"
    if cost is None:
        return f"unknown: no price for the model ({tokens})"
    return f"{dollars(cost)} ({tokens})"


def dollars(amount: float) -> str:
    """A cost as people read it: cents above a dollar, else up to six decimals ($0.000011), so a
    small test batch does not read $0.00."""
    if amount >= 1:
        return f"${amount:,.2f}"
    whole, _, cents = f"{amount:.6f}".rstrip("0").partition(".")
    return f"${whole}.{cents.ljust(2, '0')}"


def relative_time(at: datetime, now: datetime) -> str:
    """`at` as people say it from `now`: "in 40 s", "in 4 min", "in 2 h 5 min", "now"."""
    seconds = (at - now).total_seconds()
    if seconds < 1:
        return "now"
    if seconds < 60:
        return f"in {int(seconds)} s"
    minutes = round(seconds / 60)
    if minutes < 60:
        return f"in {minutes} min"
    hours, minutes = divmod(minutes, 60)
    return f"in {hours} h {minutes} min" if minutes else f"in {hours} h"

"""Pure workflow logic: the poll schedule's arithmetic and how a batch's progress is shown."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from durabatch.client import start_summary
from durabatch.contract import decode_input, validate_input
from durabatch.models import BatchState, BatchTotals, ProviderBatchRef, ShardState
from workflows.schedule import JITTER_FRACTION, poll_delay
from workflows.validate import BatchConfig
from workflows.views import details_markdown, dollars, relative_time, status_of, summary_of, usage_so_far

SCHEDULE = (30.0, 60.0, 120.0)


def test_poll_delay_follows_the_schedule_and_repeats_its_last_value() -> None:
    middle = 0.5  # unit_random 0.5 is no jitter at all
    assert [poll_delay(SCHEDULE, i, middle) for i in range(5)] == [30.0, 60.0, 120.0, 120.0, 120.0]


@pytest.mark.parametrize("unit_random", [0.0, 0.25, 0.999999])
def test_poll_delay_jitter_stays_within_its_fraction(unit_random: float) -> None:
    delay = poll_delay(SCHEDULE, 1, unit_random)
    assert 60.0 * (1 - JITTER_FRACTION) <= delay <= 60.0 * (1 + JITTER_FRACTION)
    assert poll_delay(SCHEDULE, 1, 0.0) < poll_delay(SCHEDULE, 1, 0.999999), "jitter spreads polls"


def test_poll_delay_refuses_an_empty_schedule() -> None:
    with pytest.raises(ValueError, match="empty"):
        poll_delay((), 0, 0.5)


def _cfg() -> BatchConfig:
    return BatchConfig(
        batch_id="b1",
        provider="openai",
        endpoint="/v1/chat/completions",
        model="gpt-4o-mini",
        poll_schedule=SCHEDULE,
        max_age_seconds=3600,
        handlers=(),
    )


def test_usage_so_far_sums_ingested_shards_until_the_totals_exist() -> None:
    st = BatchState(
        status="finalizing",
        request_count=30,
        shards=[
            ShardState(shard=0, ingested=True, input_tokens=100, output_tokens=10, cost_usd=0.5),
            ShardState(shard=1, ingested=True, input_tokens=50, output_tokens=5, cost_usd=0.25),
            ShardState(shard=2, succeeded=3),  # still running: nothing of it counted yet
        ],
    )
    assert usage_so_far(st) == (150, 15, 0.75)
    q = status_of(_cfg(), st, None)
    assert (q.input_tokens, q.output_tokens, q.cost_usd) == (150, 15, 0.75)
    summary = summary_of(_cfg(), st, "batch-b1")
    assert (summary.input_tokens, summary.output_tokens, summary.cost_usd) == (150, 15, 0.75)

    st.shards[1].cost_usd = None  # a model without a price: the cost is unknown, never a low figure
    assert usage_so_far(st) == (150, 15, None)

    st.totals = BatchTotals(status="completed", input_tokens=200, output_tokens=20, cost_usd=1.0)
    assert usage_so_far(st) == (200, 20, 1.0)


def test_nothing_ingested_means_no_cost_yet() -> None:
    assert usage_so_far(BatchState(shards=[ShardState(shard=0)])) == (0, 0, None)


def test_details_name_the_counts_the_provider_batches_and_a_failure() -> None:
    st = BatchState(
        status="in_progress",
        request_count=10,
        poll_count=3,
        shards=[
            ShardState(
                shard=0,
                ref=ProviderBatchRef(provider="openai", provider_batch_id="batch_abc"),
                provider_status="in_progress",
                succeeded=4,
            )
        ],
        failure_reason="max age reached",
    )
    text = details_markdown(_cfg(), st, None)
    assert "**requests** 10: 4 succeeded, 0 failed, 0 expired, 0 cancelled, 6 pending" in text
    assert "batch_abc (in_progress)" in text and "**polls** 3" in text
    assert "**failure** max age reached" in text


def test_the_cancel_reason_reaches_the_status_query_the_summary_and_the_status_table() -> None:
    from durabatch.cli.console import status_table

    st = BatchState(status="cancelled", cancel_requested=True, cancel_reason="wrong prompt")
    status = status_of(_cfg(), st, None)
    assert status.cancel_reason == "wrong prompt"
    assert summary_of(_cfg(), st, "batch-b1").cancel_reason == "wrong prompt"
    assert '"cancel_reason":"wrong prompt"' in status.model_dump_json()
    rows = list(zip(*(col.cells for col in status_table(status).columns), strict=True))
    assert ("cancel reason", "wrong prompt") in rows


def test_a_stretch_spares_the_first_two_polls() -> None:
    middle = 0.5
    assert [poll_delay(SCHEDULE, i, middle, 4.0) for i in range(4)] == [30.0, 60.0, 480.0, 480.0]
    assert poll_delay(SCHEDULE, 5, middle) == 120.0


NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("seconds", "said"),
    [
        (0, "now"),
        (0.4, "now"),
        (40, "in 40 s"),
        (240, "in 4 min"),
        (89, "in 1 min"),
        (7500, "in 2 h 5 min"),
        (7200, "in 2 h"),
        (-30, "now"),
    ],
)
def test_relative_time_is_what_people_say(seconds: float, said: str) -> None:
    assert relative_time(NOW + timedelta(seconds=seconds), NOW) == said


def test_details_show_status_provider_model_cost_so_far_and_the_next_poll_from_workflow_time() -> None:
    st = BatchState(
        status="in_progress",
        request_count=10,
        model="gpt-4o-mini",
        poll_count=2,
        shards=[
            ShardState(
                shard=0,
                provider_batch_id="b0",
                ingested=True,
                input_tokens=1200,
                output_tokens=30,
                cost_usd=0.0123,
            ),
            ShardState(shard=1, provider_batch_id="b1", provider_status="in_progress"),
        ],
    )
    text = details_markdown(_cfg(), st, NOW + timedelta(minutes=4), NOW)
    assert "**status** in_progress · **provider** openai · **model** gpt-4o-mini" in text
    assert "**cost so far** $0.0123 (1,200 input + 30 output tokens)" in text
    assert "**polls** 2 · next poll in 4 min (at 12:04:00 UTC)" in text
    # the same state at the same workflow time reads the same: nothing in it comes from the wall clock
    assert details_markdown(_cfg(), st, NOW + timedelta(minutes=4), NOW) == text


def test_details_say_when_the_cost_is_not_known_yet_or_at_all() -> None:
    nothing = BatchState(status="submitted", request_count=3, shards=[ShardState(shard=0)])
    assert "**cost so far** - (no results yet)" in details_markdown(_cfg(), nothing, None, NOW)
    unpriced = BatchState(
        status="in_progress",
        shards=[ShardState(shard=0, ingested=True, input_tokens=5, output_tokens=1, cost_usd=None)],
    )
    assert "**cost so far** unknown: no price for the model (5 input + 1 output tokens)" in details_markdown(
        _cfg(), unpriced, None, NOW
    )


def test_an_ended_batch_shows_no_next_poll() -> None:
    st = BatchState(status="completed", poll_count=4, totals=BatchTotals(status="completed", cost_usd=0.5))
    text = details_markdown(_cfg(), st, NOW + timedelta(minutes=1), NOW)
    assert text.count("**polls** 4") == 1 and "next" not in text
    assert "**cost so far** $0.50" in text


@pytest.mark.parametrize(
    ("amount", "said"),
    [(0, "$0.00"), (0.5, "$0.50"), (0.0123, "$0.0123"), (0.0000108, "$0.000011"), (1234.5, "$1,234.50")],
)
def test_dollars_keep_small_costs_readable(amount: float, said: str) -> None:
    assert dollars(amount) == said


def test_the_static_summary_names_provider_model_and_request_count() -> None:
    assert (
        start_summary("openai", "b1", "gpt-4o-mini", 12) == "openai batch b1: 12 requests, model gpt-4o-mini"
    )
    assert start_summary("anthropic", "b2", None, 3) == "anthropic batch b2: 3 requests"
    assert (
        start_summary("gemini", "b3", "gemini-2.0-flash", None) == "gemini batch b3: model gemini-2.0-flash"
    )
    assert start_summary("openai", "b4", None, None) == "openai batch b4"


def test_details_show_rounds_real_time_and_waiting_shards() -> None:
    cfg = validate_input(
        decode_input(
            {
                "batch_id": "b1",
                "provider": "openai",
                "endpoint": "/v1/chat/completions",
                "requests": [{}],
                "max_rounds": 3,
            }
        ),
        "batch-b1",
    )
    waiting = ShardState(
        shard=1,
        state="waiting_admission",
        admission_reason="waiting for admission: 2 ahead; 1 of 1 concurrent batches running",
    )
    st = BatchState(
        shards=[ShardState(shard=0), waiting], retry_rounds=1, realtime_requests=7, realtime_rpm=120.0
    )
    text = details_markdown(cfg, st, None)
    assert "**retry rounds** 1 of 2" in text
    assert "**real time** 7 finished at 120 requests/min" in text
    assert "**shard 1** waiting for admission: 2 ahead" in text

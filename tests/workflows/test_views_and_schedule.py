"""Pure workflow logic: the poll schedule's arithmetic and how a batch's progress is shown."""

from __future__ import annotations

import pytest

from durabatch.models import BatchState, BatchTotals, ProviderBatchRef, ShardState
from workflows.schedule import JITTER_FRACTION, poll_delay
from workflows.validate import BatchConfig
from workflows.views import details_markdown, status_of, summary_of, usage_so_far

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

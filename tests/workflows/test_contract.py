"""durabatch.contract: every BatchInput field has a type, a range and an error naming it."""

from __future__ import annotations

from typing import Any

import pytest
from temporalio.exceptions import ApplicationError

from durabatch import contract
from durabatch.contract import (
    BATCH_FAILED,
    MAX_AGE_SECONDS_MAX,
    MAX_HANDLER_GRACE_SECONDS,
    MAX_POLL_DELAY_SECONDS,
    BatchConfig,
    InvalidBatchInput,
    decode_input,
    summary_from_failure,
    validate_input,
)
from durabatch.models import BatchSummary
from workflows.options import handler_preset

HOOK = {"type": "webhook", "url": "https://hooks.example.com/batch"}


def config(**fields: Any) -> BatchConfig:
    raw = {
        "batch_id": "b1",
        "provider": "openai",
        "endpoint": "/v1/chat/completions",
        "requests": [{"custom_id": "a"}],
        **fields,
    }
    return validate_input(decode_input(raw), "batch-b1")


def refused(**fields: Any) -> str:
    with pytest.raises(InvalidBatchInput) as info:
        config(**fields)
    return str(info.value)


def test_defaults_apply_to_a_minimal_input() -> None:
    cfg = config()
    assert cfg.poll_schedule == contract.DEFAULT_POLL_SCHEDULE
    assert cfg.max_age_seconds == contract.DEFAULT_MAX_AGE_SECONDS
    assert cfg.handler_grace_seconds == contract.DEFAULT_HANDLER_GRACE_SECONDS
    assert cfg.handlers == () and cfg.metadata == {}


@pytest.mark.parametrize(
    ("fields", "ok"),
    [
        ({"max_age_seconds": MAX_AGE_SECONDS_MAX}, True),
        ({"max_age_seconds": MAX_AGE_SECONDS_MAX + 1}, False),
        ({"max_age_seconds": 0}, False),
        ({"max_age_seconds": 1e12}, False),
        ({"max_age_seconds": float("inf")}, False),
        ({"max_age_seconds": True}, False),
        ({"max_age_seconds": "60"}, False),
        ({"max_age_seconds": 10**400}, False),
        ({"poll_schedule_seconds": [MAX_POLL_DELAY_SECONDS]}, True),
        ({"poll_schedule_seconds": [MAX_POLL_DELAY_SECONDS + 1]}, False),
        ({"poll_schedule_seconds": [0.5, float("nan")]}, False),
        ({"poll_schedule_seconds": []}, False),
        ({"poll_schedule_seconds": [1.0] * 101}, False),
        ({"handler_grace_seconds": 0}, True),
        ({"handler_grace_seconds": MAX_HANDLER_GRACE_SECONDS}, True),
        ({"handler_grace_seconds": MAX_HANDLER_GRACE_SECONDS + 1}, False),
        ({"handler_grace_seconds": -1}, False),
        ({"max_cost_usd": 0.01}, True),
        ({"max_cost_usd": 0}, False),
        ({"max_cost_usd": -5.0}, False),
        ({"max_cost_usd": float("inf")}, False),
        ({"max_cost_usd": 1e10}, False),
        ({"max_cost_usd": "5"}, False),
        ({"priority": 1}, True),
        ({"priority": 5}, True),
        ({"priority": 0}, False),
        ({"priority": 6}, False),
        ({"priority": 2.0}, False),
        ({"max_rounds": 1}, True),
        ({"max_rounds": 10}, True),
        ({"max_rounds": 0}, False),
        ({"max_rounds": 11}, False),
        ({"max_rounds": "2"}, False),
        ({"mode": "realtime"}, True),
        ({"mode": "stream"}, False),
        ({"realtime": {"concurrency": 8, "rpm": 600, "tpm": 100000}}, True),
        ({"realtime": {"concurrency": 0}}, False),
        ({"realtime": {"rpm": -1}}, False),
        ({"realtime": {"rpm": "fast"}}, False),
        ({"realtime": {"burst": 3}}, False),
        ({"deadline_seconds": 3600.0}, True),
        ({"deadline_seconds": 0}, False),
        ({"deadline_seconds": 25 * 3600.0}, False),
        ({"push_poll_stretch": 4.0}, True),
        ({"push_poll_stretch": 0.5}, False),
        ({"push_poll_stretch": 1000.0}, False),
        ({"max_requests_per_shard": 1}, True),
        ({"max_requests_per_shard": 0}, False),
        ({"max_bytes_per_shard": 1024}, True),
        ({"max_bytes_per_shard": 10}, False),
        ({"tenant": "team-a"}, True),
        ({"tenant": ""}, False),
        ({"tenant": "x" * 65}, False),
        ({"tenant": "a\x00b"}, False),
    ],
)
def test_durations_are_bounded(fields: dict[str, Any], ok: bool) -> None:
    if ok:
        config(**fields)
    else:
        assert next(iter(fields)) in refused(**fields)


@pytest.mark.parametrize(("attempts", "ok"), [(1, True), (100, True), (0, False), (101, False), (-1, False)])
def test_handler_attempts_are_1_to_100(attempts: int, ok: bool) -> None:
    handlers = [{**HOOK, "max_attempts": attempts}]
    if ok:
        assert config(handlers=handlers).handlers[0].max_attempts == attempts
    else:
        assert "handlers[0].max_attempts" in refused(handlers=handlers)


@pytest.mark.parametrize("url", ["/relative", "ftp://h/x", "http:///no-host", "https://", "", None])
def test_webhook_urls_are_absolute_http_with_a_host(url: str | None) -> None:
    assert "handlers[0].url" in refused(handlers=[{"type": "webhook", "url": url}])


@pytest.mark.parametrize("queue", ["/_sys/durabatch", "  "])
def test_an_activity_handler_needs_a_usable_task_queue(queue: str) -> None:
    handlers = [{"type": "activity", "name": "notify", "task_queue": queue}]
    assert "'handlers[0].task_queue'" in refused(handlers=handlers)


def test_unknown_fields_are_named_top_level_and_in_handlers() -> None:
    assert "'max_age_second'" in refused(max_age_second=60)
    assert "'poll_schedule'" in refused(poll_schedule=[1])
    assert "'handlers[0].retries'" in refused(handlers=[{**HOOK, "retries": 3}])


def test_metadata_is_bounded() -> None:
    config(metadata={f"k{i}": "v" for i in range(64)})
    assert "'metadata'" in refused(metadata={f"k{i}": "v" for i in range(65)})
    assert "keys are" in refused(metadata={"k" * 129: "v"})
    config(metadata={"k": "v" * 1024})
    assert "'metadata.k'" in refused(metadata={"k": "v" * 1025})
    assert "16384 limit" in refused(metadata={f"k{i}": "v" * 1000 for i in range(20)})
    assert "NUL" in refused(metadata={"k": "a\x00b"})
    assert "'model'" in refused(model="gpt\x00")


def test_inline_requests_must_be_standard_json() -> None:
    assert "'requests[0]'" in refused(requests=[{"custom_id": "a", "body": {"temperature": float("nan")}}])
    assert "lone surrogate" in refused(requests=[{"custom_id": "a"}, {"custom_id": "b\ud800"}])


def test_text_must_be_encodable_and_errors_always_are() -> None:
    assert "lone surrogate" in refused(model="gpt\ud800")
    message = refused(metadata={"k\udc80": "v"})
    assert "lone surrogate" in message and message.encode("utf-8")


def test_state_is_internal_unless_the_workflow_continued_the_run() -> None:
    raw = {"batch_id": "b1", "provider": "openai", "endpoint": "/e", "state": {"staged": True}}
    with pytest.raises(InvalidBatchInput, match="'state': internal"):
        validate_input(decode_input(raw), "batch-b1")
    assert validate_input(decode_input(raw, strict=False), "batch-b1", continued=True).batch_id == "b1"


def test_one_batch_id_pattern_for_cli_client_and_workflow() -> None:
    from durabatch import client
    from durabatch.cli import batch as cli

    assert getattr(cli, "BATCH_ID_RE") is contract.BATCH_ID_RE  # noqa: B009 (not re-exported)
    assert getattr(client, "BATCH_ID_RE") is contract.BATCH_ID_RE  # noqa: B009
    assert "'batch_id'" in refused(batch_id="-leading-dash")
    assert "'batch_id'" in refused(batch_id="x" * 129)


def test_a_batch_failed_error_carries_the_summary() -> None:
    summary = BatchSummary(
        batch_id="b1", workflow_id="batch-b1", status="failed", provider="openai", endpoint="/e"
    )
    err = ApplicationError("batch b1 failed", summary.model_dump(mode="json"), type=BATCH_FAILED)
    assert summary_from_failure(err) == summary
    assert summary_from_failure(ApplicationError("other", type="InvalidInput")) is None


def test_handler_preset_never_builds_an_invalid_retry_policy() -> None:
    assert handler_preset(-1).retry.maximum_attempts == 1
    assert handler_preset(10**6).retry.maximum_attempts == 100
    assert handler_preset(None).retry.maximum_attempts == contract.DEFAULT_HANDLER_ATTEMPTS

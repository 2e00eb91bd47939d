"""Provider errors become Temporal failures the workflow's retry policies can act on."""

from __future__ import annotations

from datetime import timedelta

import pytest

from activities.errors import to_application_error
from durabatch.providers import errors as perr
from durabatch.store import errors as serr
from workflows.options import NON_RETRYABLE


def test_rate_limit_carries_the_providers_retry_after() -> None:
    failure = to_application_error(
        perr.RateLimited("slow down", provider="openai", status_code=429, request_id="req_1", retry_after=7)
    )
    assert not failure.non_retryable
    assert failure.next_retry_delay == timedelta(seconds=7)
    assert failure.type == "RateLimited" and failure.type not in NON_RETRYABLE
    assert "HTTP 429" in failure.message and "slow down" in failure.message and "req_1" in failure.message


def test_retryable_without_retry_after_uses_the_policy_backoff() -> None:
    failure = to_application_error(
        perr.ProviderUnavailable("bad gateway", provider="gemini", status_code=502)
    )
    assert not failure.non_retryable and failure.next_retry_delay is None


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (
            perr.AuthenticationFailed("invalid x-api-key", provider="anthropic", status_code=401),
            "AuthenticationFailed",
        ),
        (perr.QuotaExceeded("enqueued token limit", provider="openai"), "QuotaExceeded"),
        (perr.BadRequest("model not found", provider="openai", status_code=400), "ProviderRejected"),
        (perr.NotFound("no such batch", provider="openai", status_code=404), "ProviderRejected"),
    ],
)
def test_permanent_errors_are_never_retried(error: perr.ProviderError, kind: str) -> None:
    failure = to_application_error(error)
    assert failure.non_retryable and failure.type == kind and kind in NON_RETRYABLE
    assert error.message in failure.message, "the provider's own message is kept"


def test_a_value_the_store_refuses_is_invalid_input_and_never_retried() -> None:
    failure = to_application_error(
        serr.StoreDataError("CharacterNotInRepertoireError: invalid byte sequence", sqlstate="22021")
    )
    assert failure.non_retryable and failure.type == "InvalidInput" and failure.type in NON_RETRYABLE
    assert "invalid byte sequence" in failure.message


@pytest.mark.parametrize(
    "error",
    [
        serr.StoreUnavailable("ConnectionDoesNotExistError: connection was closed", sqlstate="08003"),
        serr.StoreUnavailable("DeadlockDetectedError: deadlock detected", sqlstate="40P01"),
        serr.StoreConflict("UniqueViolationError: duplicate key", sqlstate="23505"),
    ],
)
def test_other_store_errors_are_retried_under_their_own_type(error: serr.StoreError) -> None:
    failure = to_application_error(error)
    assert not failure.non_retryable and failure.type == type(error).__name__
    assert failure.type not in NON_RETRYABLE and error.args[0] in failure.message

"""Provider, store and input errors become Temporal failures here, once.

`ApplicationError.type` is what the workflow's retry policies match (workflows/options.py); the
names are `durabatch.contract` constants. INVALID_INPUT, BATCH_ID_IN_USE, PROVIDER_REJECTED,
AUTHENTICATION_FAILED and QUOTA_EXCEEDED are not retried; everything retryable carries
`next_retry_delay` from the provider's Retry-After when it gave one.

Store errors (durabatch.store.errors): a value PostgreSQL cannot store is INVALID_INPUT, not
retried (a retry would send the same value); everything else, StoreUnavailable above all, is
retried under its own type name within the activity's bounded budget.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio.exceptions import ApplicationError

from durabatch import contract
from durabatch.providers import errors as perr
from durabatch.store import errors as serr

__all__ = ["batch_id_in_use", "invalid_input", "to_application_error"]


def invalid_input(message: str) -> ApplicationError:
    return ApplicationError(message, type=contract.INVALID_INPUT, non_retryable=True)


def batch_id_in_use(message: str) -> ApplicationError:
    return ApplicationError(message, type=contract.BATCH_ID_IN_USE, non_retryable=True)


def to_application_error(exc: perr.ProviderError | serr.StoreError) -> ApplicationError:
    if isinstance(exc, serr.StoreError):
        return _store_failure(exc)
    if isinstance(exc, perr.AuthenticationFailed):
        return ApplicationError(str(exc), type=contract.AUTHENTICATION_FAILED, non_retryable=True)
    if isinstance(exc, perr.QuotaExceeded):
        return ApplicationError(str(exc), type=contract.QUOTA_EXCEEDED, non_retryable=True)
    if isinstance(exc, perr.PermanentProviderError):
        return ApplicationError(str(exc), type=contract.PROVIDER_REJECTED, non_retryable=True)
    delay = timedelta(seconds=exc.retry_after) if exc.retry_after else None
    return ApplicationError(str(exc), type=type(exc).__name__, next_retry_delay=delay)


def _store_failure(exc: serr.StoreError) -> ApplicationError:
    if isinstance(exc, serr.StoreDataError):
        return ApplicationError(
            f"PostgreSQL refused a value: {exc}", type=contract.INVALID_INPUT, non_retryable=True
        )
    return ApplicationError(str(exc), type=type(exc).__name__)

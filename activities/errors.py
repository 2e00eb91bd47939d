"""Provider and input errors become Temporal failures here, once.

`ApplicationError.type` is what the workflow's retry policies match (workflows/options.py); the
names are `durabatch.contract` constants. INVALID_INPUT, BATCH_ID_IN_USE, PROVIDER_REJECTED,
AUTHENTICATION_FAILED and QUOTA_EXCEEDED are not retried; everything retryable carries
`next_retry_delay` from the provider's Retry-After when it gave one.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio.exceptions import ApplicationError

from durabatch import contract
from durabatch.providers import errors as perr

__all__ = ["batch_id_in_use", "invalid_input", "to_application_error"]


def invalid_input(message: str) -> ApplicationError:
    return ApplicationError(message, type=contract.INVALID_INPUT, non_retryable=True)


def batch_id_in_use(message: str) -> ApplicationError:
    return ApplicationError(message, type=contract.BATCH_ID_IN_USE, non_retryable=True)


def to_application_error(exc: perr.ProviderError) -> ApplicationError:
    if isinstance(exc, perr.AuthenticationFailed):
        return ApplicationError(str(exc), type=contract.AUTHENTICATION_FAILED, non_retryable=True)
    if isinstance(exc, perr.QuotaExceeded):
        return ApplicationError(str(exc), type=contract.QUOTA_EXCEEDED, non_retryable=True)
    if isinstance(exc, perr.PermanentProviderError):
        return ApplicationError(str(exc), type=contract.PROVIDER_REJECTED, non_retryable=True)
    delay = timedelta(seconds=exc.retry_after) if exc.retry_after else None
    return ApplicationError(str(exc), type=type(exc).__name__, next_retry_delay=delay)

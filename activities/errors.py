"""Provider and input errors become Temporal failures here, once.

`ApplicationError.type` is what the workflow's retry policies match (workflows/options.py):
InvalidInput, ProviderRejected, AuthenticationFailed and QuotaExceeded are not retried; everything
retryable carries `next_retry_delay` from the provider's Retry-After when it gave one.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio.exceptions import ApplicationError

from durabatch.providers import errors as perr

__all__ = ["invalid_input", "to_application_error"]


def invalid_input(message: str) -> ApplicationError:
    return ApplicationError(message, type="InvalidInput", non_retryable=True)


def to_application_error(exc: perr.ProviderError) -> ApplicationError:
    if isinstance(exc, perr.AuthenticationFailed):
        return ApplicationError(str(exc), type="AuthenticationFailed", non_retryable=True)
    if isinstance(exc, perr.QuotaExceeded):
        return ApplicationError(str(exc), type="QuotaExceeded", non_retryable=True)
    if isinstance(exc, perr.PermanentProviderError):
        return ApplicationError(str(exc), type="ProviderRejected", non_retryable=True)
    delay = timedelta(seconds=exc.retry_after) if exc.retry_after else None
    return ApplicationError(str(exc), type=type(exc).__name__, next_retry_delay=delay)

"""Provider errors: HTTP statuses and transport failures become these, once, in the clients.

    ProviderError                      provider, message, status_code, request_id
    ├── RetryableProviderError         retry_after (seconds) when the provider said so
    │   ├── RateLimited                429
    │   ├── ProviderUnavailable        5xx, 529
    │   └── TransportError             timeouts, dropped connections, cut downloads
    └── PermanentProviderError         retrying the same call cannot help
        ├── BadRequest                 400, 413, 422, validation
        ├── AuthenticationFailed       401, 403, a missing API key
        ├── NotFound                   404
        └── QuotaExceeded              enqueued-token limit: the batch may be submitted again later

Messages carry the provider's own text and request id, never an API key.
"""

from __future__ import annotations

__all__ = [
    "AuthenticationFailed",
    "BadRequest",
    "NotFound",
    "PermanentProviderError",
    "ProviderError",
    "ProviderUnavailable",
    "QuotaExceeded",
    "RateLimited",
    "RetryableProviderError",
    "TransportError",
]


class ProviderError(Exception):
    retryable: bool = False

    def __init__(
        self,
        message: str,
        *,
        provider: str,
        status_code: int | None = None,
        request_id: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        self.message = message
        self.provider = provider
        self.status_code = status_code
        self.request_id = request_id
        self.retry_after = retry_after
        super().__init__(str(self))

    def __str__(self) -> str:
        parts = [f"{self.provider}"]
        if self.status_code is not None:
            parts.append(f"HTTP {self.status_code}")
        text = " ".join(parts) + f": {self.message}"
        if self.request_id:
            text += f" (request id {self.request_id})"
        return text


class RetryableProviderError(ProviderError):
    retryable = True


class RateLimited(RetryableProviderError):
    pass


class ProviderUnavailable(RetryableProviderError):
    pass


class TransportError(RetryableProviderError):
    pass


class PermanentProviderError(ProviderError):
    retryable = False


class BadRequest(PermanentProviderError):
    pass


class AuthenticationFailed(PermanentProviderError):
    pass


class NotFound(PermanentProviderError):
    pass


class QuotaExceeded(PermanentProviderError):
    """Not retryable now, but the same batch may be submitted again once quota frees up."""

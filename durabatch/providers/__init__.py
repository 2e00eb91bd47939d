"""Provider batch API clients behind one interface (see base.BatchProvider).

Public surface: the interface types (`base`), the error tree (`errors`), request-line formats
(`formats`), prices (`prices`) and `build_provider` (`registry`). Clients live in `openai`,
`anthropic` and `gemini`, on the shared base in `client_base`; `http` and `jsonl` are shared
plumbing.
"""

from durabatch.providers.base import (
    TERMINAL_STATES,
    BatchProvider,
    ProviderBatchRef,
    ProviderLimits,
    ProviderState,
    ProviderStatus,
    RequestCounts,
    RequestLine,
    ResultCursor,
    ResultLine,
    ResultOutcome,
    ShardSubmission,
)
from durabatch.providers.errors import (
    AuthenticationFailed,
    BadRequest,
    NotFound,
    PermanentProviderError,
    ProviderError,
    ProviderUnavailable,
    QuotaExceeded,
    RateLimited,
    RetryableProviderError,
    TransportError,
)
from durabatch.providers.formats import (
    ENDPOINTS,
    KNOWN_PROVIDERS,
    InvalidRequestLine,
    check_endpoint,
    model_of,
    normalize_line,
)
from durabatch.providers.prices import cost_usd
from durabatch.providers.registry import build_provider

__all__ = [
    "ENDPOINTS",
    "KNOWN_PROVIDERS",
    "TERMINAL_STATES",
    "AuthenticationFailed",
    "BadRequest",
    "BatchProvider",
    "InvalidRequestLine",
    "NotFound",
    "PermanentProviderError",
    "ProviderBatchRef",
    "ProviderError",
    "ProviderLimits",
    "ProviderState",
    "ProviderStatus",
    "ProviderUnavailable",
    "QuotaExceeded",
    "RateLimited",
    "RequestCounts",
    "RequestLine",
    "ResultCursor",
    "ResultLine",
    "ResultOutcome",
    "RetryableProviderError",
    "ShardSubmission",
    "TransportError",
    "build_provider",
    "check_endpoint",
    "cost_usd",
    "model_of",
    "normalize_line",
]

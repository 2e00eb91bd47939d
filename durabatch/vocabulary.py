"""The words every layer shares: providers, status sets, `ApplicationError` type names.

Defined here once; `durabatch.contract` exports them with the rest of the contract, and that is
where callers import them from. Pure: the standard library only.
"""

from __future__ import annotations

from typing import Literal

__all__ = [
    "AUTHENTICATION_FAILED",
    "BATCH_FAILED",
    "BATCH_ID_IN_USE",
    "BATCH_STATUSES",
    "COST_LIMIT_EXCEEDED",
    "INVALID_INPUT",
    "MAX_AGE_CODE",
    "NON_RETRYABLE_ERRORS",
    "PROVIDERS",
    "PROVIDER_LOST_BATCH",
    "PROVIDER_REJECTED",
    "PROVIDER_TERMINAL_STATES",
    "QUOTA_EXCEEDED",
    "RETRYABLE_ERROR_CODES",
    "RETRYABLE_STATUS_CODES",
    "SEARCH_ATTRIBUTES",
    "TERMINAL_BATCH_STATUSES",
    "WEBHOOK_FAILED",
    "WORKFLOW_TYPE",
    "sweep_workflow_id",
    "workflow_id_for",
]

PROVIDERS = ("openai", "anthropic", "gemini")
#: Every status a batch can be in, in lifecycle order (`models.BatchStatus`; what
#: `durabatch list --status` accepts).
BATCH_STATUSES = (
    "pending",
    "submitted",
    "in_progress",
    "finalizing",
    "completed",
    "cancelled",
    "expired",
    "failed",
)
#: A batch in one of these has ended; its outcome is final.
TERMINAL_BATCH_STATUSES = frozenset({"completed", "cancelled", "expired", "failed"})
#: A provider batch in one of these (as mapped by durabatch.providers) has ended at the provider.
PROVIDER_TERMINAL_STATES = frozenset({"completed", "failed", "expired", "cancelled"})

#: `ApplicationError.type` names, matched by retry policies and read by clients.
INVALID_INPUT = "InvalidInput"
BATCH_FAILED = "BatchFailed"
BATCH_ID_IN_USE = "BatchIdInUse"
PROVIDER_REJECTED = "ProviderRejected"
AUTHENTICATION_FAILED = "AuthenticationFailed"
QUOTA_EXCEEDED = "QuotaExceeded"
WEBHOOK_FAILED = "WebhookFailed"
#: the estimated cost of a batch is above its `max_cost_usd` (or its model has no known price)
COST_LIMIT_EXCEEDED = "CostLimitExceeded"
#: Failures a retry cannot fix: activities raise them non-retryable and presets never retry them.
NON_RETRYABLE_ERRORS = (
    INVALID_INPUT,
    BATCH_ID_IN_USE,
    PROVIDER_REJECTED,
    AUTHENTICATION_FAILED,
    QUOTA_EXCEEDED,
)
#: `ShardState.failure_code` of a provider batch the provider no longer knows.
PROVIDER_LOST_BATCH = "provider_lost_batch"

#: Which failed requests a retry round sends again (durabatch/store/rounds.py applies it): the
#: provider's transient trouble, never the request's own fault (400-class, content policy) and
#: never a cancel or durabatch's own max age.
RETRYABLE_STATUS_CODES = (408, 409, 429)  # and every 5xx
RETRYABLE_ERROR_CODES = (
    "missing_result",  # the provider returned no result for the request
    "missing_response",
    "rate_limit_exceeded",
    "server_error",
    "rate_limit_error",  # Anthropic's error types
    "overloaded_error",
    "api_error",
    "RESOURCE_EXHAUSTED",  # Gemini's statuses
    "UNAVAILABLE",
    "INTERNAL",
    "DEADLINE_EXCEEDED",
)
#: the error code of requests expired by durabatch's own max age (not retried)
MAX_AGE_CODE = "max_age"


# ---- names other languages and the `temporal` CLI rely on -------------------------------------

WORKFLOW_TYPE = "BatchWorkflow"


def workflow_id_for(batch_id: str) -> str:
    return f"batch-{batch_id}"


def sweep_workflow_id(provider: str) -> str:
    """The one account sweep workflow of a provider (`AccountSweepWorkflow`)."""
    return f"durabatch-sweep-{provider}"


#: Search attributes durabatch upserts; the worker registers them when the namespace lacks them.
SEARCH_ATTRIBUTES: dict[str, Literal["keyword", "int"]] = {
    "DurabatchStatus": "keyword",
    "DurabatchProvider": "keyword",
    "DurabatchModel": "keyword",
    "DurabatchRequests": "int",
}

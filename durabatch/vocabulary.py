"""The words every layer shares: providers, status sets, `ApplicationError` type names.

Defined here once; `durabatch.contract` exports them with the rest of the contract, and that is
where callers import them from. Pure: no imports at all.
"""

from __future__ import annotations

__all__ = [
    "AUTHENTICATION_FAILED",
    "BATCH_FAILED",
    "BATCH_ID_IN_USE",
    "BATCH_STATUSES",
    "COST_LIMIT_EXCEEDED",
    "INVALID_INPUT",
    "NON_RETRYABLE_ERRORS",
    "PROVIDERS",
    "PROVIDER_LOST_BATCH",
    "PROVIDER_REJECTED",
    "PROVIDER_TERMINAL_STATES",
    "QUOTA_EXCEEDED",
    "TERMINAL_BATCH_STATUSES",
    "WEBHOOK_FAILED",
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

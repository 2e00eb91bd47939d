"""Gemini's batch operations and result lines read into durabatch's terms: pure functions, no I/O."""

from __future__ import annotations

import logging
from typing import Any

from durabatch.providers.base import (
    ProviderState,
    ProviderStatus,
    RequestCounts,
    ResultLine,
    token_count,
)
from durabatch.providers.wire import parse_timestamp

__all__ = [
    "GEMINI_STATES",
    "INLINE_RESULTS",
    "batch_created_at",
    "gemini_result",
    "gemini_status",
    "inline_responses",
]

#: the client's logger: these readers are part of it
log = logging.getLogger("durabatch.providers.gemini")

#: marks `ProviderStatus.output_location` when results are inline in the batch operation
INLINE_RESULTS = "inline"

GEMINI_STATES: dict[str, ProviderState] = {
    "BATCH_STATE_UNSPECIFIED": "submitted",
    "BATCH_STATE_PENDING": "submitted",
    "BATCH_STATE_RUNNING": "in_progress",
    "BATCH_STATE_SUCCEEDED": "completed",
    "BATCH_STATE_FAILED": "failed",
    "BATCH_STATE_CANCELLED": "cancelled",
    "BATCH_STATE_EXPIRED": "expired",
}


def batch_created_at(op: dict[str, Any]) -> float:
    meta = op.get("metadata") or {}
    return parse_timestamp(meta.get("createTime")) or 0.0


def _output(operation: dict[str, Any]) -> dict[str, Any]:
    response = operation.get("response")
    if isinstance(response, dict) and (response.get("responsesFile") or response.get("inlinedResponses")):
        return response
    meta = operation.get("metadata") or {}
    output = meta.get("output")
    return output if isinstance(output, dict) else {}


def inline_responses(operation: dict[str, Any]) -> list[dict[str, Any]]:
    inlined = _output(operation).get("inlinedResponses")
    # double nesting on the wire: inlinedResponses.inlinedResponses (docs/providers.md, trap 25)
    if isinstance(inlined, dict):
        inlined = inlined.get("inlinedResponses")
    return [r for r in inlined or [] if isinstance(r, dict)]


def _count(stats: dict[str, Any], key: str) -> int:
    # int64 counts are JSON strings, and zero values are omitted
    try:
        return int(stats.get(key) or 0)
    except (TypeError, ValueError):
        return 0


def gemini_status(operation: dict[str, Any]) -> ProviderStatus:
    meta = operation.get("metadata") or {}
    raw = str(meta.get("state") or operation.get("state") or "BATCH_STATE_UNSPECIFIED")
    state = GEMINI_STATES.get(raw.replace("JOB_STATE_", "BATCH_STATE_"))
    if state is None:
        log.warning("unknown gemini batch state %r, treated as in_progress", raw)
        state = "in_progress"
    stats = meta.get("batchStats") or {}
    total = _count(stats, "requestCount")
    succeeded = _count(stats, "successfulRequestCount")
    failed = _count(stats, "failedRequestCount")
    pending = (
        _count(stats, "pendingRequestCount") if "pendingRequestCount" in stats else total - succeeded - failed
    )
    output = _output(operation)
    location: str | None = None
    if output.get("responsesFile"):
        location = str(output["responsesFile"])
    elif output.get("inlinedResponses"):
        location = INLINE_RESULTS
    status = ProviderStatus(
        state=state,
        provider_status=raw,
        counts=RequestCounts(total=total, succeeded=succeeded, failed=failed, processing=max(0, pending)),
        output_location=location,
    )
    error = operation.get("error")
    if isinstance(error, dict) and state == "failed":
        status.failure_code = str(error.get("status") or error.get("code") or "")
        status.failure_message = str(error.get("message") or "")
        # google.rpc.Code 8 is RESOURCE_EXHAUSTED: a quota refusal, worth submitting again later
        status.retry_later = error.get("code") == 8 or error.get("status") == "RESOURCE_EXHAUSTED"
    return status


def gemini_result(item: Any, key: Any) -> ResultLine | None:
    if not isinstance(item, dict) or not isinstance(key, str):
        if item is not None:
            log.error("gemini result without key skipped")
        return None
    response = item.get("response")
    if isinstance(response, dict):
        usage = response.get("usageMetadata") or {}
        return ResultLine(
            custom_id=key,
            outcome="succeeded",
            status_code=200,
            body=response,
            # promptTokenCount already includes cachedContentTokenCount
            input_tokens=token_count(usage.get("promptTokenCount")),
            cached_tokens=token_count(usage.get("cachedContentTokenCount")),
            output_tokens=token_count(usage.get("candidatesTokenCount"))
            + token_count(usage.get("thoughtsTokenCount")),
        )
    error = item.get("error")
    code = error.get("code") if isinstance(error, dict) else None
    return ResultLine(
        custom_id=key,
        outcome="failed",
        status_code=code if isinstance(code, int) else None,
        error=error if isinstance(error, dict) else {"message": "result has neither response nor error"},
    )

"""OpenAI's batch objects and result lines read into durabatch's terms: pure functions, no I/O.

Also read: Together's ``{"job": ...}`` wrapper and uppercase statuses (docs/providers.md, OpenAI).
"""

from __future__ import annotations

import logging
from typing import Any

import msgspec

from durabatch.providers.base import (
    ProviderState,
    ProviderStatus,
    RequestCounts,
    ResultLine,
    ResultOutcome,
    token_count,
)

__all__ = ["OPENAI_STATES", "openai_decode", "openai_result", "openai_status", "openai_usage", "unwrap_batch"]

#: the client's logger: these readers are part of it
log = logging.getLogger("durabatch.providers.openai")

#: OpenAI batch status -> durabatch state (docs/providers.md, OpenAI statuses)
OPENAI_STATES: dict[str, ProviderState] = {
    "validating": "submitted",
    "in_progress": "in_progress",
    "finalizing": "finalizing",
    "completed": "completed",
    "failed": "failed",
    "expired": "expired",
    "cancelling": "in_progress",
    "canceling": "in_progress",  # Together's spelling (uppercase there; matched case-blind)
    "cancelled": "cancelled",
}

#: batch-level error codes that mean "quota, submit again later" rather than "bad input"
_RETRY_LATER_CODES = frozenset({"token_limit_exceeded"})
#: top-level per-line error codes that are not request failures
_LINE_ERROR_OUTCOMES: dict[str, ResultOutcome] = {"batch_expired": "expired", "batch_cancelled": "cancelled"}


def unwrap_batch(batch: dict[str, Any]) -> dict[str, Any]:
    """Together answers a batch as ``{"job": {...}}``; OpenAI and the others answer it bare."""
    job = batch.get("job")
    return job if isinstance(job, dict) and "id" not in batch else batch


def openai_status(batch: dict[str, Any]) -> ProviderStatus:
    batch = unwrap_batch(batch)
    raw = str(batch.get("status"))
    state = OPENAI_STATES.get(raw.lower())
    if state is None:
        log.warning("unknown openai batch status %r, treated as in_progress", raw)
        state = "in_progress"
    counts = batch.get("request_counts") or {}
    total, done, failed = (int(counts.get(k) or 0) for k in ("total", "completed", "failed"))
    status = ProviderStatus(
        state=state,
        provider_status=raw,
        counts=RequestCounts(
            total=total, succeeded=done, failed=failed, processing=max(0, total - done - failed)
        ),
        output_location=batch.get("output_file_id"),
        error_location=batch.get("error_file_id"),
    )
    errors = (batch.get("errors") or {}).get("data") or []
    if errors and isinstance(errors[0], dict):
        first = errors[0]
        status.failure_code = first.get("code")
        message = str(first.get("message") or "")
        if first.get("line") is not None:
            message = f"line {first['line']}: {message}"
        if len(errors) > 1:
            message += f" (and {len(errors) - 1} more errors)"
        status.failure_message = message
        status.retry_later = state == "failed" and first.get("code") in _RETRY_LATER_CODES
    return status


def openai_usage(body: dict[str, Any] | None) -> tuple[int, int, int]:
    """(input, cached, output) tokens of a chat/completions/embeddings or responses body."""
    return _usage_tokens((body or {}).get("usage"))


def _usage_tokens(usage: Any) -> tuple[int, int, int]:
    if not isinstance(usage, dict):
        return 0, 0, 0
    if "input_tokens" in usage or "output_tokens" in usage:  # Responses API
        details = usage.get("input_tokens_details") or {}
        return (
            token_count(usage.get("input_tokens")),
            token_count(details.get("cached_tokens")),
            token_count(usage.get("output_tokens")),
        )
    prompt, completion = usage.get("prompt_tokens"), usage.get("completion_tokens")
    details = usage.get("prompt_tokens_details") or {}
    cached = details.get("cached_tokens") if isinstance(details, dict) else None
    if type(prompt) is int and type(completion) is int and (cached is None or type(cached) is int):
        # the shape of (nearly) every line: plain integers, no per-field conversion needed
        return prompt, cached or 0, completion
    return token_count(prompt), token_count(cached), token_count(completion)


class _CachedTokens(msgspec.Struct):
    cached_tokens: int | None = None


class _ChatUsage(msgspec.Struct):
    """Chat/completions usage, its counts type-checked by the decoder (a count that is not an
    integer fails the struct, and the line is then decoded whole and read by `_usage_tokens`)."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    prompt_tokens_details: _CachedTokens | None = None
    # the Responses API's names: present (even null), the line is read by `_usage_tokens`
    input_tokens: Any = msgspec.UNSET
    output_tokens: Any = msgspec.UNSET


class _Body(msgspec.Struct):
    usage: _ChatUsage | None = None


class _Response(msgspec.Struct):
    status_code: Any = None
    body: _Body | None = None


class _Succeeded(msgspec.Struct):
    """The parts of a result line that a success needs; the rest of the line (the answer, most of
    its bytes) is skipped by the decoder without building a Python object of it."""

    custom_id: Any = None
    response: _Response | None = None
    error: Any = None


_SUCCEEDED = msgspec.json.Decoder(_Succeeded)
_ANY = msgspec.json.Decoder()


def openai_decode(raw: bytes) -> Any:
    """A result line's record for `openai_result`: for a success (nearly every line) only the parts
    it reads; for any other line the whole JSON value. Raises msgspec.DecodeError where msgspec
    cannot read the line (the stream then falls back to `json.loads`)."""
    try:
        line = _SUCCEEDED.decode(raw)
    except msgspec.ValidationError:
        # JSON, but not shaped as a success (a `response` or `body` that is not an object)
        return _ANY.decode(raw)
    response = line.response
    if (
        type(line.custom_id) is str
        and line.error is None
        and response is not None
        and type(response.status_code) is int
        and 200 <= response.status_code < 300
    ):
        usage = None if response.body is None else response.body.usage
        if usage is None or (usage.input_tokens is msgspec.UNSET and usage.output_tokens is msgspec.UNSET):
            return line
    return _ANY.decode(raw)


def openai_result(record: Any) -> ResultLine | None:
    """One output/error file line as a ResultLine (cursor left default); None if not a result.

    `record` is the line's JSON value, or what `openai_decode` made of a success: that one carries
    no `body` (the provider's line, kept as `raw`, holds it)."""
    if type(record) is _Succeeded:
        response = record.response
        assert response is not None
        usage = None if response.body is None else response.body.usage
        if usage is None:
            return ResultLine(record.custom_id, "succeeded", response.status_code)
        details = usage.prompt_tokens_details
        return ResultLine(
            record.custom_id,
            "succeeded",
            response.status_code,
            input_tokens=usage.prompt_tokens,
            cached_tokens=0 if details is None or details.cached_tokens is None else details.cached_tokens,
            output_tokens=usage.completion_tokens,
        )
    if not isinstance(record, dict) or not isinstance(record.get("custom_id"), str):
        if record is not None:
            log.error("openai result line without custom_id skipped")
        return None
    custom_id = record["custom_id"]
    error = record.get("error")
    response = record.get("response")
    if isinstance(error, dict):
        outcome = _LINE_ERROR_OUTCOMES.get(str(error.get("code")), "failed")
        return ResultLine(custom_id=custom_id, outcome=outcome, error=error)
    if not isinstance(response, dict):
        return ResultLine(
            custom_id=custom_id,
            outcome="failed",
            error={"code": "missing_response", "message": "result line has neither response nor error"},
        )
    status_code = response.get("status_code")
    body = response.get("body") if isinstance(response.get("body"), dict) else None
    code = status_code if isinstance(status_code, int) else None
    if code is not None and 200 <= code < 300:
        tokens_in, cached, tokens_out = openai_usage(body)
        return ResultLine(
            custom_id=custom_id,
            outcome="succeeded",
            status_code=code,
            body=body,
            input_tokens=tokens_in,
            cached_tokens=cached,
            output_tokens=tokens_out,
        )
    # The HTTP failure of one request lives inside `response` (top-level error is null).
    err = (body or {}).get("error")
    return ResultLine(
        custom_id=custom_id,
        outcome="failed",
        status_code=code,
        body=body,
        error=err if isinstance(err, dict) else {"code": f"http_{code}", "message": str(body)[:500]},
    )

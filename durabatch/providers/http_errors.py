"""HTTP answers and transport failures become provider errors here, once.

429 -> RateLimited (retry_after from ``retry-after-ms``, ``retry-after`` or Gemini's RetryInfo),
5xx/529/408/409 -> ProviderUnavailable, timeouts and dropped connections -> TransportError,
400/413/422 -> BadRequest, 401/403 -> AuthenticationFailed, 404 -> NotFound,
402 and quota-type 429s (``insufficient_quota``, spend limits) -> QuotaExceeded.
Messages carry the provider's own text and request id; any secret sent in a header is redacted
from them, so an emulator or proxy echoing a key can never leak it into logs or the store.
"""

from __future__ import annotations

import email.utils
import json
import re
import time
from collections.abc import Collection, Mapping
from typing import Any

import httpx

from durabatch.providers.errors import (
    AuthenticationFailed,
    BadRequest,
    NotFound,
    ProviderError,
    ProviderUnavailable,
    QuotaExceeded,
    RateLimited,
    TransportError,
)

__all__ = ["error_for_response", "parse_retry_after", "redact", "transport_error"]

_REQUEST_ID_HEADERS = ("x-request-id", "request-id", "x-goog-request-id")
_QUOTA_CODES = frozenset({"insufficient_quota", "enforced_spend_limit_reached", "billing_error"})
_MAX_MESSAGE = 1000


def parse_retry_after(
    headers: Mapping[str, str], body: object = None, now: float | None = None
) -> float | None:
    """Seconds the provider asked us to wait: ``retry-after-ms``, ``retry-after`` (seconds or an
    HTTP date), or a Gemini ``google.rpc.RetryInfo`` detail (``"retryDelay": "19s"``)."""
    lowered = {k.lower(): v for k, v in headers.items()}
    raw_ms = lowered.get("retry-after-ms")
    if raw_ms is not None:
        try:
            return max(0.0, float(raw_ms) / 1000.0)
        except ValueError:
            pass
    raw = lowered.get("retry-after")
    if raw is not None:
        raw = raw.strip()
        try:
            return max(0.0, float(raw))
        except ValueError:
            try:
                when = email.utils.parsedate_to_datetime(raw)
            except (TypeError, ValueError):
                when = None
            if when is not None:
                return max(0.0, when.timestamp() - (time.time() if now is None else now))
    return _gemini_retry_delay(body)


def _gemini_retry_delay(body: object) -> float | None:
    if not isinstance(body, dict):
        return None
    error = body.get("error")
    details = error.get("details") if isinstance(error, dict) else None
    if not isinstance(details, list):
        return None
    for detail in details:
        if isinstance(detail, dict) and str(detail.get("@type", "")).endswith("google.rpc.RetryInfo"):
            delay = detail.get("retryDelay")
            if isinstance(delay, str):
                match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)s\s*", delay)
                if match:
                    return float(match.group(1))
            elif isinstance(delay, dict):  # proto Duration as an object
                return float(delay.get("seconds", 0) or 0) + float(delay.get("nanos", 0) or 0) / 1e9
    return None


def redact(text: str, secrets: Collection[str]) -> str:
    for secret in secrets:
        # a header value such as "Bearer <key>": hide the whole value and each word of it
        for part in (secret, *secret.split()):
            if len(part) >= 8:
                text = text.replace(part, "***")
    return text


def _describe_body(body: object, text: str) -> tuple[str, str | None, str | None]:
    """(message, code, body request id) from OpenAI, Anthropic or Gemini error bodies."""
    if isinstance(body, dict):
        error = body.get("error")
        request_id = body.get("request_id") if isinstance(body.get("request_id"), str) else None
        if isinstance(error, dict):
            message = str(error.get("message") or "").strip()
            # OpenAI: code; Anthropic: type; Gemini: status (+ numeric code)
            code = error.get("code") if isinstance(error.get("code"), str) else None
            kind = error.get("type") or error.get("status")
            details = error.get("details")
            if isinstance(details, dict) and isinstance(details.get("error_code"), str):
                code = details["error_code"]
            label = code or (str(kind) if kind else None)
            full = f"{label}: {message}" if label and message else (message or label or "")
            return full or text[:_MAX_MESSAGE], code or (str(kind) if kind else None), request_id
        if isinstance(error, str):
            return error, None, request_id
        if isinstance(body.get("message"), str):
            return str(body["message"]), None, request_id
    return text[:_MAX_MESSAGE] or "(empty response body)", None, None


def error_for_response(
    provider: str, response: httpx.Response, secrets: Collection[str] = (), context: str = ""
) -> ProviderError:
    """The provider error for a non-success response whose body has been read."""
    text = response.text if response.content else ""
    try:
        body: object = json.loads(text) if text else None
    except ValueError:
        body = None
    message, code, body_request_id = _describe_body(body, text)
    if context:
        message = f"{context}: {message}"
    message = redact(message[:_MAX_MESSAGE], secrets)
    request_id = next((response.headers[h] for h in _REQUEST_ID_HEADERS if h in response.headers), None)
    request_id = request_id or body_request_id
    status = response.status_code
    kwargs: dict[str, Any] = {"provider": provider, "status_code": status, "request_id": request_id}
    if status == 429:
        if code in _QUOTA_CODES:
            return QuotaExceeded(message, **kwargs)
        return RateLimited(message, retry_after=parse_retry_after(response.headers, body), **kwargs)
    if status == 402:
        return QuotaExceeded(message, **kwargs)
    # Gemini answers a bad key with 400 INVALID_ARGUMENT and reason API_KEY_INVALID.
    if status in (401, 403) or (status == 400 and "API_KEY_INVALID" in text):
        return AuthenticationFailed(message, **kwargs)
    if status == 404:
        return NotFound(message, **kwargs)
    if status >= 500 or status in (408, 409):
        return ProviderUnavailable(message, retry_after=parse_retry_after(response.headers, body), **kwargs)
    return BadRequest(message, **kwargs)


def transport_error(provider: str, exc: Exception, context: str = "") -> TransportError:
    # httpx messages name the host and the failure, never headers, so they hold no secret.
    detail = str(exc) or type(exc).__name__
    text = f"{type(exc).__name__}: {detail}"
    return TransportError(f"{context}: {text}" if context else text, provider=provider)

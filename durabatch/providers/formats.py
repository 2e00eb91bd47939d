"""Request-line formats: what users may hand durabatch, normalised to what a provider takes.

Accepted input shapes (any provider; the body is always the provider's own request body):
- OpenAI batch line  ``{"custom_id", "method": "POST", "url": <endpoint>, "body": {...}}``
- Anthropic line     ``{"custom_id", "params": {...}}``
- short form         ``{"custom_id", "body": {...}}``
- Gemini file line   ``{"key", "request": {...}}``  (``key`` plays the role of ``custom_id``)

`normalize_line` returns a `RequestLine(custom_id, body)` or raises `InvalidRequestLine`, whose message
names the 1-based line number and the field. Only what the provider cannot take is rejected here
(the provider validates the rest itself, often asynchronously).

Endpoints, as durabatch names them (`check_endpoint`):
- openai:    ``/v1/chat/completions``, ``/v1/embeddings``, ``/v1/responses``, ``/v1/completions``,
             ``/v1/moderations``
- anthropic: ``/v1/messages``
- gemini:    ``generateContent`` (``models/{model}:batchGenerateContent`` on the wire)
"""

from __future__ import annotations

import re
from typing import Any

from durabatch.providers.base import RequestLine

__all__ = [
    "ANTHROPIC_ENDPOINT",
    "ENDPOINTS",
    "GEMINI_ENDPOINT",
    "KNOWN_PROVIDERS",
    "MAX_CUSTOM_ID_LENGTH",
    "OPENAI_ENDPOINTS",
    "InvalidRequestLine",
    "check_endpoint",
    "model_of",
    "normalize_line",
]

OPENAI_ENDPOINTS: frozenset[str] = frozenset(
    {"/v1/chat/completions", "/v1/embeddings", "/v1/responses", "/v1/completions", "/v1/moderations"}
)
ANTHROPIC_ENDPOINT = "/v1/messages"
GEMINI_ENDPOINT = "generateContent"

ENDPOINTS: dict[str, frozenset[str]] = {
    "openai": OPENAI_ENDPOINTS,
    "anthropic": frozenset({ANTHROPIC_ENDPOINT}),
    "gemini": frozenset({GEMINI_ENDPOINT}),
}
KNOWN_PROVIDERS: frozenset[str] = frozenset(ENDPOINTS)

MAX_CUSTOM_ID_LENGTH = 64
_ANTHROPIC_CUSTOM_ID = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")


class InvalidRequestLine(ValueError):
    """A request line a provider cannot take. `line_no` is 1-based; `field` names the culprit."""

    def __init__(self, line_no: int, field: str | None, reason: str) -> None:
        self.line_no = line_no
        self.field = field
        self.reason = reason
        where = f"line {line_no}" + (f", field {field!r}" if field else "")
        super().__init__(f"{where}: {reason}")


def check_endpoint(provider: str, endpoint: str) -> None:
    """Raise ValueError naming the endpoint (and the accepted ones) if `provider` can't batch it."""
    if provider not in ENDPOINTS:
        raise ValueError(f"unknown provider {provider!r}; known: {', '.join(sorted(KNOWN_PROVIDERS))}")
    accepted = ENDPOINTS[provider]
    if endpoint not in accepted:
        raise ValueError(
            f"endpoint {endpoint!r} is not accepted by {provider} batches; accepted: {', '.join(sorted(accepted))}"
        )


def model_of(provider: str, body: dict[str, Any]) -> str | None:
    """The model a request body names, if any (Gemini's ``models/`` prefix removed)."""
    model = body.get("model")
    if not isinstance(model, str) or not model:
        return None
    if provider == "gemini":
        model = model.removeprefix("models/")
    return model


def normalize_line(obj: object, line_no: int, provider: str, endpoint: str) -> RequestLine:
    """Validate one parsed JSONL record and return its custom id and provider request body."""
    check_endpoint(provider, endpoint)
    if not isinstance(obj, dict):
        raise InvalidRequestLine(line_no, None, f"expected a JSON object, got {_json_type(obj)}")

    custom_id = _custom_id(obj, line_no, provider)

    if "method" in obj and obj["method"] != "POST":
        raise InvalidRequestLine(line_no, "method", f'must be "POST", got {obj["method"]!r}')
    if "url" in obj and obj["url"] != endpoint:
        raise InvalidRequestLine(
            line_no, "url", f"must equal the batch endpoint {endpoint!r}, got {obj['url']!r}"
        )

    body_keys = [k for k in ("body", "params", "request") if k in obj]
    if not body_keys:
        raise InvalidRequestLine(line_no, "body", "missing (expected one of 'body', 'params', 'request')")
    if len(body_keys) > 1:
        raise InvalidRequestLine(line_no, body_keys[1], f"only one of {', '.join(body_keys)} may be given")
    field = body_keys[0]
    body = obj[field]
    if not isinstance(body, dict):
        raise InvalidRequestLine(line_no, field, f"must be a JSON object, got {_json_type(body)}")

    _check_body(provider, endpoint, body, line_no, field)
    return RequestLine(custom_id=custom_id, body=body)


def _custom_id(obj: dict[str, Any], line_no: int, provider: str) -> str:
    field = "custom_id" if "custom_id" in obj or "key" not in obj else "key"
    if field not in obj:
        raise InvalidRequestLine(line_no, "custom_id", "missing")
    value = obj[field]
    if not isinstance(value, str):
        raise InvalidRequestLine(line_no, field, f"must be a string, got {_json_type(value)}")
    if not value:
        raise InvalidRequestLine(line_no, field, "must not be empty")
    if len(value) > MAX_CUSTOM_ID_LENGTH:
        raise InvalidRequestLine(line_no, field, f"is {len(value)} characters long; at most 64 are allowed")
    if provider == "anthropic" and not _ANTHROPIC_CUSTOM_ID.match(value):
        raise InvalidRequestLine(
            line_no, field, "Anthropic allows only letters, digits, '-' and '_' (^[a-zA-Z0-9_-]{1,64}$)"
        )
    return value


def _check_body(provider: str, endpoint: str, body: dict[str, Any], line_no: int, field: str) -> None:
    # Batch APIs reject streaming requests (OpenAI, Anthropic docs); Gemini has no such flag.
    if body.get("stream") is True:
        raise InvalidRequestLine(line_no, f"{field}.stream", "streaming is not available in batch mode")
    if "model" in body and not (isinstance(body["model"], str) and body["model"]):
        raise InvalidRequestLine(line_no, f"{field}.model", "must be a non-empty string")
    if provider == "anthropic":
        # The Messages API cannot run without these; max_tokens 0 is rejected in batches.
        if not isinstance(body.get("messages"), list):
            raise InvalidRequestLine(line_no, f"{field}.messages", "must be a list of messages")
        max_tokens = body.get("max_tokens")
        if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
            raise InvalidRequestLine(line_no, f"{field}.max_tokens", "must be a positive integer")
    elif provider == "gemini":
        if not isinstance(body.get("contents"), list):
            raise InvalidRequestLine(line_no, f"{field}.contents", "must be a list of contents")


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"

"""Error bodies in each provider's real shape, and the request ids that go with them."""

from __future__ import annotations

import json
import secrets
import string
from typing import Any

from aiohttp import web

from durabatch.emulator.wire import PROVIDER, REQUEST_ID

__all__ = [
    "anthropic_error_body",
    "anthropic_request_id",
    "error_response",
    "gemini_error_body",
    "gemini_status_name",
    "openai_error_body",
    "openai_request_id",
]

_B62 = string.ascii_letters + string.digits

_OPENAI_TYPES = {401: "invalid_request_error", 429: "rate_limit_exceeded"}
_ANTHROPIC_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    409: "conflict_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    502: "api_error",
    503: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}
_GEMINI_STATUS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ABORTED",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    502: "UNAVAILABLE",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
_DEFAULT_MESSAGES = {
    429: "Rate limit reached. Please try again later.",
    500: "The server had an error while processing your request. Sorry about that!",
    502: "Bad gateway.",
    503: "The server is overloaded or not ready yet.",
    504: "Gateway timeout.",
    529: "Overloaded",
}


def openai_request_id() -> str:
    return "req_" + secrets.token_hex(16)


def anthropic_request_id() -> str:
    return "req_011C" + "".join(secrets.choice(_B62) for _ in range(20))


def default_message(status: int) -> str:
    return _DEFAULT_MESSAGES.get(status, "An error occurred.")


def openai_error_body(
    status: int,
    message: str | None = None,
    *,
    type_: str | None = None,
    param: str | None = None,
    code: str | None = None,
) -> dict[str, Any]:
    if type_ is None:
        type_ = _OPENAI_TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")
    if code is None and status == 429:
        code = "rate_limit_exceeded"
    return {
        "error": {
            "message": message or default_message(status),
            "type": type_,
            "param": param,
            "code": code,
        }
    }


def anthropic_error_body(
    status: int, message: str | None = None, *, request_id: str | None, type_: str | None = None
) -> dict[str, Any]:
    return {
        "type": "error",
        "error": {
            "type": type_ or _ANTHROPIC_TYPES.get(status, "api_error"),
            "message": message or default_message(status),
        },
        "request_id": request_id,
    }


def gemini_status_name(status: int) -> str:
    return _GEMINI_STATUS.get(status, "INTERNAL" if status >= 500 else "INVALID_ARGUMENT")


def gemini_error_body(
    status: int,
    message: str | None = None,
    *,
    status_name: str | None = None,
    details: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "code": status,
        "message": message or default_message(status),
        "status": status_name or gemini_status_name(status),
    }
    if details:
        body["details"] = details
    return {"error": body}


def error_response(
    request: web.Request,
    status: int,
    message: str | None = None,
    *,
    type_: str | None = None,
    param: str | None = None,
    code: str | None = None,
    headers: dict[str, str] | None = None,
) -> web.Response:
    """An error in the shape of the provider that owns `request`'s route."""
    provider = request.get(PROVIDER, "openai")
    body: dict[str, Any]
    if provider == "anthropic":
        body = anthropic_error_body(status, message, request_id=request.get(REQUEST_ID), type_=type_)
    elif provider == "gemini":
        body = gemini_error_body(status, message, status_name=type_)
    else:
        body = openai_error_body(status, message, type_=type_, param=param, code=code)
    return web.Response(
        status=status,
        text=json.dumps(body),
        content_type="application/json",
        headers=headers,
    )

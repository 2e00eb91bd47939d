"""The aiohttp application: routes of the three providers and the admin API, behind one
middleware that counts requests, checks keys and applies wire faults."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable

from aiohttp import web

from durabatch.emulator import (
    admin_routes,
    anthropic_routes,
    gemini_files,
    gemini_routes,
    openai_files,
    openai_routes,
    realtime_routes,
)
from durabatch.emulator.errors import (
    anthropic_request_id,
    error_response,
    gemini_error_body,
    openai_error_body,
    openai_request_id,
)
from durabatch.emulator.faults import Fault
from durabatch.emulator.state import STATE_KEY, EmulatorState
from durabatch.emulator.webhooks_out import webhook_watcher
from durabatch.emulator.wire import OPERATION, PROVIDER, REQUEST_ID, drop_connection

__all__ = ["build_app"]
_PRE_FAULTS = frozenset({"http_error", "slow", "drop_connection"})

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _auth_error(request: web.Request, provider: str, state: EmulatorState) -> web.Response | None:
    keys = state.api_keys
    h = request.headers
    if provider == "openai":
        auth = h.get("Authorization", "")
        key = auth[7:] if auth.startswith("Bearer ") else ""
        if key in keys:
            return None
        if not key:
            msg = (
                "You didn't provide an API key. You need to provide your API key in an Authorization "
                "header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY), or as the password "
                "field (with blank username) if you're accessing the API from your browser and are "
                "prompted for a username. You can obtain an API key from "
                "https://platform.openai.com/account/api-keys."
            )
            body = openai_error_body(401, msg, type_="invalid_request_error")
        else:
            shown = key[:3] + "*" * max(0, len(key) - 7) + key[-4:] if len(key) > 7 else key
            msg = (
                f"Incorrect API key provided: {shown}. You can find your API key at "
                "https://platform.openai.com/account/api-keys."
            )
            body = openai_error_body(401, msg, type_="invalid_request_error", code="invalid_api_key")
        return web.json_response(body, status=401)
    if provider == "anthropic":
        auth = h.get("Authorization", "")
        key = h.get("x-api-key") or (auth[7:] if auth.startswith("Bearer ") else "")
        if key not in keys:
            msg = "invalid x-api-key" if key else "x-api-key header is required"
            return error_response(request, 401, msg, type_="authentication_error")
        if "anthropic-version" not in h:
            return error_response(request, 400, "anthropic-version: header is required")
        return None
    # Gemini: the upload URL itself is the credential for the data leg of a resumable upload.
    if "upload_id" in request.query:
        return None
    key = h.get("x-goog-api-key") or request.query.get("key", "")
    if key in keys:
        return None
    status = state.config.gemini_bad_key_status
    if not key:
        body = gemini_error_body(
            403,
            "Method doesn't allow unregistered callers (callers without established identity). "
            "Please use API Key or other form of API consumer identity to call this API.",
            status_name="PERMISSION_DENIED",
        )
        return web.json_response(body, status=403)
    body = gemini_error_body(
        status,
        "API key not valid. Please pass a valid API key.",
        status_name="UNAUTHENTICATED" if status == 401 else "INVALID_ARGUMENT",
        details=[
            {
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": "API_KEY_INVALID",
                "domain": "googleapis.com",
                "metadata": {"service": "generativelanguage.googleapis.com"},
            }
        ],
    )
    return web.json_response(body, status=status)


def _http_error(request: web.Request, fault: Fault) -> web.Response:
    spec = fault.spec
    headers: dict[str, str] = {}
    if spec.retry_after is not None:
        headers["Retry-After"] = f"{spec.retry_after:g}"
    if spec.retry_after_ms is not None:
        headers["retry-after-ms"] = str(spec.retry_after_ms)
    if spec.should_retry is not None:
        headers["x-should-retry"] = "true" if spec.should_retry else "false"
    if request[PROVIDER] == "gemini":
        details = []
        if spec.retry_after is not None:
            details.append(
                {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": f"{spec.retry_after:g}s"}
            )
        body = gemini_error_body(spec.status, details=details)
        return web.Response(
            status=spec.status, text=json.dumps(body), content_type="application/json", headers=headers
        )
    return error_response(request, spec.status, headers=headers)


def _is_gemini(request: web.Request) -> bool:
    return "x-goog-api-key" in request.headers or "key" in request.query


#: `/v1` paths that both OpenAI and Gemini (SDK default version `v1`) use: the key header decides
DUAL_ROUTES: list[tuple[str, str, str, Handler, Handler]] = [
    ("GET", "/v1/batches", "batches.list", openai_routes.list_batches, gemini_routes.list_batches),
    (
        "GET",
        "/v1/batches/{batch_id:[^/:]+}",
        "batches.retrieve",
        openai_routes.retrieve_batch,
        gemini_routes.get_batch,
    ),
    (
        "DELETE",
        "/v1/batches/{batch_id:[^/:]+}",
        "batches.delete",
        openai_routes.no_such_route,
        gemini_routes.delete_batch,
    ),
    (
        "GET",
        "/v1/files/{file_id:[^/:]+}",
        "files.retrieve",
        openai_files.retrieve_file,
        gemini_files.get_file,
    ),
    (
        "DELETE",
        "/v1/files/{file_id:[^/:]+}",
        "files.delete",
        openai_files.delete_file,
        gemini_files.delete_file,
    ),
]


def _dual(openai_handler: Handler, gemini_handler: Handler) -> Handler:
    async def handle(request: web.Request) -> web.StreamResponse:
        if request[PROVIDER] == "gemini":
            return await gemini_handler(request)
        return await openai_handler(request)

    return handle


@web.middleware
async def _emulator_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    # Only requests that may change what is saved schedule a save (persist.py): a status read
    # moves a timeline on, but that is recomputed from the clock after a restart, and the routes
    # that name result files on a read call `state.touch()` themselves.
    if request.method not in ("GET", "HEAD", "OPTIONS"):
        request.app[STATE_KEY].touch()
    name = request.match_info.route.name
    if not name or ":" not in name:
        return await handler(request)
    state = request.app[STATE_KEY]
    provider, operation = name.split(":")[:2]
    if provider == "dual":
        provider = "gemini" if _is_gemini(request) else "openai"
    name = f"{provider}:{operation}"
    request[PROVIDER] = provider
    request[OPERATION] = operation
    if provider == "openai":
        request[REQUEST_ID] = openai_request_id()
    elif provider == "anthropic":
        request[REQUEST_ID] = anthropic_request_id()
    state.stats.requests[name] += 1
    denied = _auth_error(request, provider, state)
    if denied is not None:
        return denied
    state.stats.call_started(name)
    try:
        taken: frozenset[str] = frozenset()
        while (fault := state.faults.take(_PRE_FAULTS, provider, operation, taken)) is not None:
            taken |= {fault.id}
            state.stats.faults_fired[fault.spec.fault] += 1
            if fault.spec.fault == "http_error":
                return _http_error(request, fault)
            if fault.spec.fault == "drop_connection":
                return drop_connection(request)
            await asyncio.sleep(fault.spec.delay_seconds)
        return await handler(request)
    finally:
        state.stats.call_ended(name)


async def _add_request_id(request: web.Request, response: web.StreamResponse) -> None:
    rid = request.get(REQUEST_ID)
    if rid is None:
        return
    if request.get(PROVIDER) == "anthropic":
        response.headers["request-id"] = rid
    else:
        response.headers["x-request-id"] = rid


def build_app(state: EmulatorState) -> web.Application:
    # Batch inputs and uploads can be hundreds of MB; the providers' own limits are enforced
    # by the routes with the providers' own errors.
    app = web.Application(middlewares=[_emulator_middleware], client_max_size=2**31)
    app[STATE_KEY] = state
    app.on_response_prepare.append(_add_request_id)
    app.cleanup_ctx.append(webhook_watcher)
    # Gemini first: its `:download`/`:cancel` paths must win over OpenAI's `{id}` patterns.
    gemini_routes.register(app)
    for method, path, operation, openai_handler, gemini_handler in DUAL_ROUTES:
        app.router.add_route(method, path, _dual(openai_handler, gemini_handler), name=f"dual:{operation}")
    openai_routes.register(app)
    anthropic_routes.register(app)
    realtime_routes.register(app)
    admin_routes.register(app)
    return app

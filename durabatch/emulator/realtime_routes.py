"""The synchronous (real-time) endpoints of the three providers, under rate limits.

OpenAI `POST /v1/chat/completions`, `/v1/responses`, `/v1/embeddings`; Anthropic `POST /v1/messages`;
Gemini `POST /v1beta/models/{model}:generateContent` (and `/v1/...`). A call is answered with the
same body its request gets in a batch's results (`content.expected_chat_response`; Anthropic's
`usage.service_tier` says `standard` instead of `batch`, as the real one does), so a request
gives the same answer whichever way it runs.

Each call goes, in order, through: the body's validation (the providers' error shapes and
words), the model check (a model outside the providers' families is 404, as an unknown model is),
the rate limit (`realtime_rpm` / `realtime_tpm` per `realtime_window_seconds`; past it a 429 with
`Retry-After` and the provider's rate-limit headers), then the markers: `__flaky` anywhere in the
request's text fails its first run with a 500 (keyed on that text: a real-time call has no
custom_id), and OpenAI's `__fail_NNN` in `user` answers NNN.
"""

from __future__ import annotations

import re
import time
from typing import Any

from aiohttp import web

from durabatch.emulator.anthropic_routes import params_error
from durabatch.emulator.batches import item_from_marker
from durabatch.emulator.content import Provider, expected_chat_response, expected_usage, request_text
from durabatch.emulator.errors import error_response, gemini_error_body
from durabatch.emulator.gemini_routes import request_error
from durabatch.emulator.ratelimit import Decision
from durabatch.emulator.route_helpers import gemini_error, missing_parameter, state_of
from durabatch.emulator.state import FLAKY_MARKER, RealtimeCall
from durabatch.emulator.wire import json_ok, read_json, rfc3339

__all__ = ["register"]

#: the model families each provider serves; any other name is answered as an unknown model
_KNOWN_MODELS: dict[Provider, re.Pattern[str]] = {
    "openai": re.compile(r"^(ft:)?(gpt-|chatgpt-|o\d|text-embedding-|omni-moderation|codex-|computer-use)"),
    "anthropic": re.compile(r"^claude-"),
    "gemini": re.compile(r"^(models/)?(gemini-|gemma-|text-embedding-|embedding-|learnlm-)"),
}


# ---------------------------------------------------------------- OpenAI


async def chat_completions(request: web.Request) -> web.Response:
    return await _openai(request, "/v1/chat/completions", "messages")


async def responses(request: web.Request) -> web.Response:
    return await _openai(request, "/v1/responses", "input")


async def embeddings(request: web.Request) -> web.Response:
    return await _openai(request, "/v1/embeddings", "input")


def _openai_invalid(request: web.Request, body: dict[str, Any], needed: str) -> web.Response | None:
    for param in ("model", needed):
        if param not in body:
            return missing_parameter(request, param)
    if not isinstance(body["model"], str):
        return _invalid_type(request, "model", "a string", body["model"])
    value = body[needed]
    if needed == "messages":
        if not isinstance(value, list) or not all(isinstance(m, dict) for m in value):
            return _invalid_type(request, "messages", "an array of objects", value)
        if not value:
            return error_response(
                request,
                400,
                "Invalid 'messages': empty array. Expected an array with minimum length 1, but got an "
                "empty array instead.",
                param="messages",
                code="empty_array",
            )
    elif not isinstance(value, str | list) or value in ("", []):
        return error_response(
            request, 400, f"Invalid '{needed}': expected a non-empty string or array.", param=needed
        )
    if body.get("stream"):
        return error_response(request, 400, "Streaming is not supported by the emulator.", param="stream")
    return None


def _invalid_type(request: web.Request, param: str, expected: str, value: Any) -> web.Response:
    got = {str: "a string", list: "an array", dict: "an object", bool: "a boolean"}.get(
        type(value), "a number"
    )
    return error_response(
        request,
        400,
        f"Invalid type for '{param}': expected {expected}, but got {got} instead.",
        param=param,
        code="invalid_type",
    )


async def _openai(request: web.Request, endpoint: str, needed: str) -> web.Response:
    body = await read_json(request)
    if not isinstance(body, dict):
        return _refused(
            request,
            "openai",
            error_response(request, 400, "We could not parse the JSON body of your request."),
        )
    bad = _openai_invalid(request, body, needed)
    if bad is not None:
        return _refused(request, "openai", bad)
    model = body["model"]
    if not _KNOWN_MODELS["openai"].match(model):
        return _refused(
            request,
            "openai",
            error_response(
                request,
                404,
                f"The model `{model}` does not exist or you do not have access to it.",
                code="model_not_found",
            ),
        )
    item = item_from_marker(str(body.get("user") or ""), body)
    answer = expected_chat_response("openai", endpoint, body)
    return _run(request, "openai", endpoint, body, answer, item.error)


# ---------------------------------------------------------------- Anthropic


async def messages(request: web.Request) -> web.Response:
    body = await read_json(request)
    if not isinstance(body, dict):
        return _anthropic_bad(request, "There was an issue with your request body: it is not valid JSON.")
    if body.get("stream"):
        return _anthropic_bad(request, "stream: streaming is not supported by the emulator")
    err = params_error(body)
    if err is not None:
        return _anthropic_bad(request, err.message)
    if not isinstance(body["messages"], list) or not body["messages"]:
        return _anthropic_bad(request, "messages: at least one message is required")
    model = body["model"]
    if not isinstance(model, str) or not _KNOWN_MODELS["anthropic"].match(model):
        return _refused(request, "anthropic", error_response(request, 404, f"model: {model}"))
    answer = expected_chat_response("anthropic", "/v1/messages", body, service_tier="standard")
    return _run(request, "anthropic", "/v1/messages", body, answer, None)


def _anthropic_bad(request: web.Request, message: str) -> web.Response:
    return _refused(request, "anthropic", error_response(request, 400, message))


# ---------------------------------------------------------------- Gemini


async def generate_content(request: web.Request) -> web.Response:
    body = await read_json(request)
    if not isinstance(body, dict):
        return _refused(request, "gemini", gemini_error(request, 400, "Invalid JSON payload received."))
    err = request_error(body)
    if err is not None:
        return _refused(request, "gemini", gemini_error(request, 400, err.message))
    name = request.match_info["model"]
    if not _KNOWN_MODELS["gemini"].match(name):
        version = request.path.split("/")[1]
        message = (
            f"models/{name} is not found for API version {version}, or is not supported for "
            "generateContent. Call ListModels to see the list of available models and their "
            "supported methods."
        )
        return _refused(request, "gemini", gemini_error(request, 404, message, "NOT_FOUND"))
    model = "models/" + name
    answer = expected_chat_response("gemini", "", body, model=model)
    return _run(request, "gemini", ":generateContent", body, answer, None)


# ---------------------------------------------------------------- shared


def _refused(request: web.Request, provider: Provider, response: web.Response) -> web.Response:
    state_of(request).stats.realtime[f"{provider}:error"] += 1
    return response


def _run(
    request: web.Request,
    provider: Provider,
    endpoint: str,
    body: dict[str, Any],
    answer: dict[str, Any],
    marked: Any,
) -> web.Response:
    """Answer a valid call: the rate limit first (a refused call ran nothing), then the markers."""
    state = state_of(request)
    cfg = state.config
    tokens = expected_usage(provider, endpoint, body).total_tokens
    now = state.now()
    decision = state.realtime_limiter.admit(
        provider,
        tokens,
        now=now,
        rpm=cfg.realtime_rpm,
        tpm=cfg.realtime_tpm,
        window=cfg.realtime_window_seconds,
    )
    headers = _limit_headers(provider, decision)
    text = request_text(provider, body)

    def counted(answer_kind: str, retry_after: float | None = None) -> None:
        state.stats.realtime[f"{provider}:{answer_kind}"] += 1
        state.stats.realtime_calls.append(RealtimeCall(provider, now, answer_kind, text, retry_after))

    if not decision.allowed:
        counted("rate_limited", decision.retry_after)
        return _rate_limited(request, provider, decision, headers)
    if FLAKY_MARKER in text and state.flaky_fails(f"{provider}:text:{text}"):
        counted("flaky")
        response = error_response(request, 500)
        response.headers.extend(headers)
        return response
    if marked is not None:
        counted("error")
        response = error_response(request, marked.status, marked.message, type_=marked.type, code=marked.code)
        response.headers.extend(headers)
        return response
    counted("ok")
    response = json_ok(answer)
    response.headers.extend(headers)
    return response


def _duration(seconds: float) -> str:
    """OpenAI's reset format: `250ms`, `1.5s`, `6m0s`."""
    if seconds < 1:
        return f"{round(seconds * 1000)}ms"
    minutes, rest = divmod(seconds, 60)
    text = f"{round(rest, 3):g}s"
    return f"{int(minutes)}m{text}" if minutes else text


def _limit_headers(provider: Provider, d: Decision) -> dict[str, str]:
    """The provider's rate-limit headers for the limits that are set (Gemini sends none)."""
    headers: dict[str, str] = {}
    for kind, limit, remaining, reset in (
        ("requests", d.limit_requests, d.remaining_requests, d.reset_requests),
        ("tokens", d.limit_tokens, d.remaining_tokens, d.reset_tokens),
    ):
        if limit is None:
            continue
        if provider == "openai":
            headers[f"x-ratelimit-limit-{kind}"] = str(limit)
            headers[f"x-ratelimit-remaining-{kind}"] = str(remaining)
            headers[f"x-ratelimit-reset-{kind}"] = _duration(reset)
        elif provider == "anthropic":
            headers[f"anthropic-ratelimit-{kind}-limit"] = str(limit)
            headers[f"anthropic-ratelimit-{kind}-remaining"] = str(remaining)
            # an instant (RFC 3339) on the wall clock, which is what clients compare it with
            headers[f"anthropic-ratelimit-{kind}-reset"] = rfc3339(time.time() + reset)
    return headers


def _rate_limited(
    request: web.Request, provider: Provider, d: Decision, headers: dict[str, str]
) -> web.Response:
    kind = d.refused_by or "requests"
    limit = d.limit_tokens if kind == "tokens" else d.limit_requests
    wait = d.retry_after
    if provider == "gemini":
        # Google APIs send no Retry-After: the wait is a RetryInfo detail of the error
        metric = "generate_content_paid_tier_input_token_count" if kind == "tokens" else "generate_requests"
        details: list[dict[str, Any]] = [
            {
                "@type": "type.googleapis.com/google.rpc.QuotaFailure",
                "violations": [
                    {
                        "quotaMetric": f"generativelanguage.googleapis.com/{metric}",
                        "quotaId": f"GenerateRequestsPerMinutePerProjectPerModel-{kind}",
                        "quotaValue": str(limit),
                    }
                ],
            },
            {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": f"{max(1, round(wait))}s"},
        ]
        body = gemini_error_body(
            429,
            "You exceeded your current quota, please check your plan and billing details.",
            status_name="RESOURCE_EXHAUSTED",
            details=details,
        )
        return web.json_response(body, status=429)
    headers = {**headers, "Retry-After": d.retry_after_header}
    if provider == "openai":
        headers["retry-after-ms"] = str(max(1, round(wait * 1000)))
        unit = "tokens per min (TPM)" if kind == "tokens" else "requests per min (RPM)"
        message = (
            f"Rate limit reached in organization org-emulator on {unit}: Limit {limit}. "
            f"Please try again in {_duration(wait)}."
        )
        return error_response(request, 429, message, type_=kind, code="rate_limit_exceeded", headers=headers)
    message = f"This request would exceed the rate limit for your organization of {limit} {kind} per minute."
    return error_response(request, 429, message, headers=headers)


def register(app: web.Application) -> None:
    r = app.router
    r.add_post("/v1/chat/completions", chat_completions, name="openai:chat.completions")
    r.add_post("/v1/responses", responses, name="openai:responses")
    r.add_post("/v1/embeddings", embeddings, name="openai:embeddings")
    r.add_post("/v1/messages", messages, name="anthropic:messages")
    for v in ("v1beta", "v1"):
        r.add_post(
            f"/{v}/models/{{model:[^/:]+}}:generateContent",
            generate_content,
            name=f"gemini:models.generateContent:{v}",
        )

"""Real-time calls of a provider's synchronous endpoint, each answered as a batch result line.

`RealtimeClient.call(custom_id, body)` sends one request (OpenAI `POST /v1/chat/completions`,
`/v1/responses`, `/v1/embeddings`, ...; Anthropic `POST /v1/messages`; Gemini `POST
/v1beta/models/{model}:generateContent`) through the provider client's `ProviderHttp` (same base
URL, auth and error translation as the batch calls) and returns a `ResultLine` exactly as ingest
would read it from a batch output file: the answer is spliced, as received, into the provider's
*batch output line* (OpenAI `{"id", "custom_id", "response": {"status_code", "request_id",
"body"}, "error"}`, Anthropic `{"custom_id", "result": {"type", "message" | "error"}}`, Gemini
`{"key", "response" | "error"}`) and that line is parsed by the batch parsers. So `durabatch
results` prints a real-time result like a batch one, and tokens are counted the same way.

Pacing and errors: at most `concurrency` calls in flight; a shared `RateLimiter` spaces calls
under `rpm` and `tpm` (a call is charged its prompt bytes / 4 plus its output cap, corrected to the
answer's real usage) and holds every call after a 429 for its `Retry-After` (or Gemini's
`RetryInfo`), or when the rate-limit headers report a limit used up. A 429 is retried up to
`max_rate_limited` times, a 5xx or transport failure up to `max_attempts` with backoff; past that
the error is raised (retryable). 400/404/413/422 are the request's own outcome: a `failed` line
with the provider's error. Authentication and quota errors are raised: no later call can pass.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx

from durabatch.estimate import BYTES_PER_TOKEN, max_output_of
from durabatch.providers.anthropic import anthropic_result
from durabatch.providers.base import ResultLine
from durabatch.providers.client_base import ProviderClient
from durabatch.providers.errors import (
    BadRequest,
    NotFound,
    ProviderError,
    ProviderUnavailable,
    RateLimited,
    TransportError,
)
from durabatch.providers.formats import check_endpoint, model_of
from durabatch.providers.gemini_wire import gemini_result
from durabatch.providers.http_errors import error_for_response
from durabatch.providers.openai_wire import openai_result
from durabatch.providers.ratelimit import CallLimits, RateLimiter

__all__ = ["CallLimits", "RealtimeClient"]

#: every error status comes back as a response: the client reads its headers before deciding
_ANY_ERROR = range(400, 600)
_COMPACT = (",", ":")


class RealtimeClient:
    """One provider endpoint called in real time under `limits`, shared by a run's calls."""

    def __init__(
        self,
        provider: ProviderClient,
        endpoint: str,
        limits: CallLimits,
        *,
        model: str | None = None,
        max_attempts: int = 5,
        max_rate_limited: int = 50,
        retry_delay: float = 0.5,
        max_retry_delay: float = 30.0,
        limiter: RateLimiter | None = None,
    ) -> None:
        check_endpoint(provider.name, endpoint)
        self.name = provider.name
        self.endpoint = endpoint
        self.model = model
        self.limits = limits
        self._http = provider.http
        self.limiter = limiter or RateLimiter(limits.rpm, limits.tpm)
        self._slots = asyncio.Semaphore(limits.concurrency)
        self.max_attempts = max_attempts
        self.max_rate_limited = max_rate_limited
        self.retry_delay = retry_delay
        self.max_retry_delay = max_retry_delay

    async def call(self, custom_id: str, body: dict[str, Any]) -> ResultLine:
        """The request's result; raises the provider error when retrying cannot help or is spent."""
        path, payload = self._request(body)
        estimate = _estimate_tokens(self.name, self.endpoint, payload)
        failures = limited = 0
        while True:
            async with self._slots:
                await self.limiter.acquire(estimate)
                outcome = await self._send(custom_id, path, payload)
            if isinstance(outcome, ResultLine):
                self.limiter.adjust(outcome.input_tokens + outcome.output_tokens - estimate)
                return outcome
            error = outcome
            if isinstance(error, RateLimited):
                limited += 1
                if limited > self.max_rate_limited:
                    raise error
                # every call waits, not only this one: the limit is the provider's, for all of them
                self.limiter.pause(
                    error.retry_after if error.retry_after is not None else self._backoff(limited)
                )
                continue
            if not error.retryable:
                raise error
            failures += 1
            if failures >= self.max_attempts:
                raise error
            await asyncio.sleep(
                error.retry_after if error.retry_after is not None else self._backoff(failures)
            )

    def _backoff(self, n: int) -> float:
        return float(min(self.max_retry_delay, self.retry_delay * 2 ** (n - 1)))

    def _request(self, body: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        """The path and JSON body of the call."""
        if self.name == "gemini":
            model = model_of("gemini", body) or (self.model or "").removeprefix("models/")
            if not model:
                raise BadRequest("a Gemini real-time call needs a model", provider=self.name)
            return f"/v1beta/models/{model}:generateContent", {k: v for k, v in body.items() if k != "model"}
        payload = body if "model" in body or not self.model else {**body, "model": self.model}
        if self.name == "openai":
            # the base URL ends in /v1, and durabatch names endpoints with it
            return self.endpoint.removeprefix("/v1"), payload
        return self.endpoint, payload

    async def _send(self, custom_id: str, path: str, payload: dict[str, Any]) -> ResultLine | ProviderError:
        try:
            response = await self._http.request(
                "POST", path, json_body=payload, allow=_ANY_ERROR, context=f"{self.endpoint} {custom_id}"
            )
        except TransportError as exc:
            return exc
        self.limiter.observe(response.headers)
        if response.is_success:
            line = _result_line(self.name, custom_id, response)
            if line is not None:
                return line
            return ProviderUnavailable(
                f"{self.endpoint}: the answer is not a JSON object",
                provider=self.name,
                status_code=response.status_code,
            )
        _, secrets = self._http.headers(None, self._http.url(path))
        error = error_for_response(self.name, response, secrets, f"{self.endpoint} {custom_id}")
        if isinstance(error, BadRequest | NotFound):
            # the request's own fault: its outcome, as a batch would have recorded it
            return _result_line(self.name, custom_id, response) or _fallback_failure(
                self.name, custom_id, error
            )
        return error


def _estimate_tokens(provider: str, endpoint: str, payload: dict[str, Any]) -> int:
    size = len(json.dumps(payload, separators=_COMPACT, ensure_ascii=False).encode())
    return size // BYTES_PER_TOKEN + (max_output_of(provider, endpoint, payload) or 0)


def _json_text(response: httpx.Response) -> str | None:
    """The body as received, when it is one JSON object (so it can be spliced into a line)."""
    text = response.text.strip()
    try:
        return text if isinstance(json.loads(text), dict) else None
    except ValueError:
        return None


def _result_line(provider: str, custom_id: str, response: httpx.Response) -> ResultLine | None:
    """The answer as the provider's batch output line (the body spliced in as received)."""
    body = _json_text(response)
    if body is None:
        return None
    ok = response.is_success
    cid = json.dumps(custom_id, ensure_ascii=False)
    if provider == "openai":
        request_id = json.dumps(response.headers.get("x-request-id"))
        text = (
            f'{{"id":{json.dumps("batch_req_" + custom_id, ensure_ascii=False)},"custom_id":{cid},'
            f'"response":{{"status_code":{response.status_code},"request_id":{request_id},"body":{body}}},'
            '"error":null}'
        )
        parsed = openai_result(json.loads(text))
    elif provider == "anthropic":
        kind, field = ("succeeded", "message") if ok else ("errored", "error")
        text = f'{{"custom_id":{cid},"result":{{"type":"{kind}","{field}":{body}}}}}'
        parsed = anthropic_result(json.loads(text))
    else:
        if not ok:
            # a Gemini error line holds the error object itself, not the {"error": ...} envelope
            inner = json.loads(body).get("error")
            if not isinstance(inner, dict):
                return None
            body = json.dumps(inner, separators=_COMPACT, ensure_ascii=False)
        field = "response" if ok else "error"
        text = f'{{"key":{cid},"{field}":{body}}}'
        record = json.loads(text)
        parsed = gemini_result(record, record.get("key"))
    if parsed is None:
        return None
    if not ok and parsed.status_code is None:
        parsed.status_code = response.status_code
    parsed.raw = text
    return parsed


def _fallback_failure(provider: str, custom_id: str, error: ProviderError) -> ResultLine:
    """A refused request whose answer was not JSON: failed, with the error's words."""
    return ResultLine(
        custom_id=custom_id,
        outcome="failed",
        status_code=error.status_code,
        error={"code": f"http_{error.status_code}", "message": error.message},
    )

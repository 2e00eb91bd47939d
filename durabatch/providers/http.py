"""Shared httpx plumbing for the provider clients: the one edge where HTTP becomes provider errors.

- `ProviderHttp.request` sends one call with the provider's auth headers (read from the environment
  at call time by the `auth` callable) and translates every failure exactly once:
  429 -> RateLimited (retry_after from ``retry-after-ms``, ``retry-after`` or Gemini's RetryInfo),
  5xx/529/408/409 -> ProviderUnavailable, timeouts and dropped connections -> TransportError,
  400/413/422 -> BadRequest, 401/403 -> AuthenticationFailed, 404 -> NotFound,
  402 and quota-type 429s (``insufficient_quota``, spend limits) -> QuotaExceeded.
  Messages carry the provider's own text and request id; any secret sent in a header is redacted
  from them, so an emulator or proxy echoing a key can never leak it into logs or the store.
- `ProviderHttp.stream_lines` downloads a JSONL file line by line (never whole in memory) and
  resumes a broken download after the last complete line: with ``Range: bytes=<offset>-`` when the
  server answers 206, otherwise by reading again from the start and skipping the lines already
  yielded. Each line is yielded exactly once. Consecutive failed attempts without progress are
  bounded; then TransportError is raised.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import logging
import re
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Collection, Mapping
from contextlib import aclosing
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl, urlsplit, urlunsplit

import httpx
import msgspec
from opentelemetry.trace import Span, StatusCode

from durabatch.providers.base import ResultLine
from durabatch.providers.errors import (
    AuthenticationFailed,
    BadRequest,
    NotFound,
    ProviderError,
    ProviderUnavailable,
    QuotaExceeded,
    RateLimited,
    RetryableProviderError,
    TransportError,
)
from durabatch.providers.jsonl import LineSplitter, parse_line
from durabatch.telemetry.traces import span, tracer

__all__ = [
    "DownloadedLine",
    "ProviderHttp",
    "as_dict",
    "error_for_response",
    "parse_retry_after",
    "parse_timestamp",
    "path_template",
    "transport_error",
    "unparsed_result",
]

log = logging.getLogger(__name__)

_REQUEST_ID_HEADERS = ("x-request-id", "request-id", "x-goog-request-id")
_QUOTA_CODES = frozenset({"insufficient_quota", "enforced_spend_limit_reached", "billing_error"})
_MAX_MESSAGE = 1000
#: 3x faster than json.loads on result lines, and gives the same objects for every line it accepts
_FAST_JSON = msgspec.json.Decoder()


@dataclass(frozen=True)
class DownloadedLine:
    """One parsed JSONL record and the position just after it (bytes and lines from the file start).

    `raw` is the record exactly as received (UTF-8 text, line end stripped), so what the provider
    said can be stored and given back byte for byte. `record` is None when the line is not JSON;
    `problem` then says why.
    """

    record: Any
    offset: int
    lines: int
    raw: str = ""
    problem: str | None = None


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


_VERSION_SEGMENT = re.compile(r"v\d+(?:alpha|beta)?\d*")


def path_template(url: str) -> str:
    """`/v1/batches/batch_abc123/cancel` -> `/v1/batches/{id}/cancel`: a low-cardinality span name part.

    Segments holding a digit or longer than 32 characters are ids (batch, file and model ids);
    Gemini's `models/gemini-2.0-flash:batchGenerateContent` keeps its method after the colon.
    The query string, which could hold a key (`?key=`), is dropped.
    """
    path = urlsplit(url).path or "/"
    out = []
    for segment in path.split("/"):
        name, colon, method = segment.partition(":")
        if (
            name
            and not _VERSION_SEGMENT.fullmatch(name)
            and (any(c.isdigit() for c in name) or len(name) > 32)
        ):
            name = "{id}"
        out.append(name + colon + method)
    return "/".join(out)


def _http_span(provider: str, method: str, url: str) -> Any:
    template = path_template(url)
    return span(
        "provider.http",
        provider=provider,
        **{
            "http.request.method": method,
            "url.template": template,
            "server.address": urlsplit(url).hostname,
        },
    )


def _stream_span(provider: str, url: str) -> Span:
    attributes = {
        "provider": provider,
        "http.request.method": "GET",
        "url.template": path_template(url),
        "server.address": urlsplit(url).hostname or "",
    }
    return tracer().start_span("provider.http", attributes=attributes)


def _redact(text: str, secrets: Collection[str]) -> str:
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
    message = _redact(message[:_MAX_MESSAGE], secrets)
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


class ProviderHttp:
    """One provider's view of the shared `httpx.AsyncClient`: base URL, auth and error translation."""

    def __init__(
        self,
        provider: str,
        http: httpx.AsyncClient,
        base_url: str,
        auth: Callable[[], dict[str, str]],
        *,
        download_attempts: int = 5,
        retry_delay: float = 0.2,
        max_retry_delay: float = 5.0,
    ) -> None:
        self.provider = provider
        self.http = http
        # A query on the base URL (Azure's dated API: `...?api-version=2024-10-21`) goes on every call.
        parts = urlsplit(base_url)
        self.base_url = urlunsplit(parts._replace(query="", fragment="")).rstrip("/")
        self.base_params: dict[str, str | int] = dict(parse_qsl(parts.query))
        self._auth = auth
        self.download_attempts = download_attempts
        self.retry_delay = retry_delay
        self.max_retry_delay = max_retry_delay

    def _same_origin(self, url: str) -> bool:
        target, base = urlsplit(url), urlsplit(self.base_url)
        return (target.scheme, target.netloc) == (base.scheme, base.netloc)

    def url(self, path: str) -> str:
        if path.startswith(("http://", "https://")):
            return path
        return self.base_url + ("" if path.startswith("/") else "/") + path

    def params(self, path: str, extra: Mapping[str, str | int] | None = None) -> dict[str, str | int]:
        """Query parameters of a call: the base URL's own (not on absolute URLs the provider handed
        out, which carry theirs), then the call's."""
        own = {} if path.startswith(("http://", "https://")) else self.base_params
        return {**own, **(extra or {})}

    def headers(
        self, extra: Mapping[str, str] | None = None, url: str | None = None
    ) -> tuple[dict[str, str], list[str]]:
        """Request headers (auth first) and the secret values in them, for redaction.

        Absolute URLs handed out by the provider (upload URLs, results URLs) get the API key only
        when they point at the configured base URL's origin: a key never leaves for another host.
        """
        if url is not None and not self._same_origin(url):
            log.warning("%s: not sending credentials to %s", self.provider, urlsplit(url).netloc)
            return dict(extra or {}), []
        auth = self._auth()
        merged = {**auth, **(extra or {})}
        return merged, list(auth.values())

    async def request(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        content: Any = None,
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, str | int] | None = None,
        allow: Collection[int] = (),
        context: str = "",
    ) -> httpx.Response:
        """Send one call; return the response (body read) if 2xx or in `allow`, else raise."""
        req_headers, secrets = self.headers(headers, self.url(path))
        with _http_span(self.provider, method, self.url(path)) as current:
            try:
                response = await self.http.request(
                    method,
                    self.url(path),
                    json=json_body,
                    content=content,
                    headers=req_headers,
                    params=self.params(path, params) or None,
                )
            except httpx.TransportError as exc:
                raise transport_error(self.provider, exc, context or f"{method} {path}") from None
            current.set_attribute("http.response.status_code", response.status_code)
            if response.is_success or response.status_code in allow:
                return response
            raise error_for_response(self.provider, response, secrets, context)

    async def json(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        response = await self.request(method, path, **kwargs)
        try:
            data = response.json()
        except ValueError:
            raise ProviderUnavailable(
                f"{method} {path}: response is not JSON",
                provider=self.provider,
                status_code=response.status_code,
                request_id=response.headers.get("x-request-id") or response.headers.get("request-id"),
            ) from None
        if not isinstance(data, dict):
            raise ProviderUnavailable(f"{method} {path}: expected a JSON object", provider=self.provider)
        return data

    async def stream_lines(
        self,
        url: str,
        *,
        start_offset: int = 0,
        start_lines: int = 0,
        headers: Mapping[str, str] | None = None,
        what: str = "result file",
    ) -> AsyncIterator[DownloadedLine]:
        """Each JSONL record of `url` after `start_offset` / `start_lines`, exactly once, resuming
        broken downloads. A complete line that is not JSON is logged and skipped (it counts)."""
        offset, lines = start_offset, start_lines
        failures = 0
        use_range = True
        while True:
            progressed = False
            restart = False
            try:
                async with aclosing(self._one_pass(url, offset, lines, headers, use_range, what)) as items:
                    async for item in items:
                        if isinstance(item, _Restart):
                            restart = True
                            break
                        offset, lines = item.offset, item.lines
                        progressed = True
                        yield item
                if not restart:
                    return
                use_range = False
                continue
            except (httpx.TransportError, RetryableProviderError, _Truncated) as exc:
                failures = 0 if progressed else failures + 1
                if failures >= self.download_attempts:
                    if isinstance(exc, RetryableProviderError):
                        raise TransportError(
                            f"{what}: download failed {failures} times at byte {offset}: {exc.message}",
                            provider=self.provider,
                            status_code=exc.status_code,
                            request_id=exc.request_id,
                        ) from None
                    raise transport_error(
                        self.provider, exc, f"{what}: download failed {failures} times at byte {offset}"
                    ) from None
                delay = min(self.max_retry_delay, self.retry_delay * (2 ** max(0, failures - 1)))
                log.warning(
                    "%s download of %s broke at byte %d (line %d), resuming: %s",
                    self.provider,
                    what,
                    offset,
                    lines,
                    exc,
                    extra={"action": "provider_download_resume", "provider": self.provider},
                )
                await asyncio.sleep(delay)

    async def _one_pass(
        self,
        url: str,
        offset: int,
        lines: int,
        extra_headers: Mapping[str, str] | None,
        use_range: bool,
        what: str,
    ) -> AsyncGenerator[DownloadedLine | _Restart, None]:
        # identity encoding: Range offsets count the bytes on the wire, so they must be the bytes we split.
        req_headers, secrets = self.headers(
            {"Accept-Encoding": "identity", **(extra_headers or {})}, self.url(url)
        )
        ranged = use_range and offset > 0
        if ranged:
            req_headers["Range"] = f"bytes={offset}-"
        # Not the current span: this generator yields to its consumer while the span is open, and a
        # context attached here would leak into the consumer between lines.
        current = _stream_span(self.provider, self.url(url))
        try:
            async for item in self._read_pass(
                url, req_headers, secrets, ranged, offset, lines, what, current
            ):
                yield item
        except BaseException as exc:
            current.record_exception(exc)
            current.set_status(StatusCode.ERROR, type(exc).__name__)
            raise
        finally:
            current.end()

    async def _read_pass(
        self,
        url: str,
        req_headers: dict[str, str],
        secrets: list[str],
        ranged: bool,
        offset: int,
        lines: int,
        what: str,
        current: Span,
    ) -> AsyncGenerator[DownloadedLine | _Restart, None]:
        async with self.http.stream(
            "GET", self.url(url), headers=req_headers, params=self.params(url) or None
        ) as response:
            current.set_attribute("http.response.status_code", response.status_code)
            if ranged:
                current.set_attribute("http.request.range_start", offset)
            if response.status_code == 416 and ranged:
                # Nothing lies past `offset`: the previous pass ended exactly at the end of the file.
                return
            if not response.is_success:
                await response.aread()
                raise error_for_response(self.provider, response, secrets, what)
            encoded = response.headers.get("content-encoding", "identity").lower() not in ("", "identity")
            if ranged and response.status_code == 206 and not encoded and _range_start(response) == offset:
                splitter, skip = LineSplitter(offset), 0
            elif ranged and response.status_code == 206:
                # A range we did not ask for: don't trust it, read the whole file next time.
                yield _Restart()
                return
            else:
                splitter, skip = LineSplitter(0), lines
            count = lines
            async for chunk in response.aiter_bytes():
                for raw, end in splitter.feed(chunk):
                    if skip:
                        skip -= 1
                        continue
                    count += 1
                    yield self._decode(raw, end, count, what)
            tail = splitter.finish()
            if tail is not None:
                raw, end = tail
                try:
                    record = parse_line(raw)
                except ValueError:
                    # An unterminated, unparseable last line means the body was cut short.
                    raise _Truncated(
                        f"{what} ends with an incomplete line at byte {end - len(raw)}"
                    ) from None
                if skip:
                    return
                yield DownloadedLine(record, end, count + 1, raw.decode("utf-8"))

    def _decode(self, raw: bytes, end: int, count: int, what: str) -> DownloadedLine:
        try:
            text = raw.decode("utf-8")
            try:
                record = _FAST_JSON.decode(raw)
            except msgspec.DecodeError:
                # msgspec refuses what the standard allows and json.loads takes: lone surrogates,
                # numbers beyond a double. Those lines take the slow road, never the error path.
                record = json.loads(text)
            return DownloadedLine(record, end, count, text)
        except ValueError as exc:
            log.error(
                "%s %s: line %d (ending at byte %d) is not JSON, skipped: %s",
                self.provider,
                what,
                count,
                end,
                exc,
                extra={"action": "provider_bad_result_line", "provider": self.provider},
            )
            return DownloadedLine(
                None, end, count, raw.decode("utf-8", "replace"), f"line {count} is not JSON: {exc}"
            )


_ID_FIELD = {
    "custom_id": re.compile(r'"custom_id"\s*:\s*"([^"\\]{1,512})"'),
    "key": re.compile(r'"key"\s*:\s*"([^"\\]{1,512})"'),
}


def unparsed_result(item: DownloadedLine, id_field: str = "custom_id") -> ResultLine | None:
    """The failure of the request a line that is not JSON seems to answer, or None if it names none.

    The id is read with a pattern, not a parser: a cut or garbled line still names its request, and
    that request then fails with the reason instead of being reported as having no result.
    """
    match = _ID_FIELD[id_field].search(item.raw)
    if match is None:
        return None
    return ResultLine(
        custom_id=match.group(1),
        outcome="failed",
        error={"code": "invalid_result_line", "message": f"{item.problem}; line starts {item.raw[:200]!r}"},
    )


class _Truncated(Exception):
    pass


@dataclass(frozen=True)
class _Restart:
    pass


def _range_start(response: httpx.Response) -> int | None:
    match = re.match(r"\s*bytes\s+(\d+)-", response.headers.get("content-range", ""))
    return int(match.group(1)) if match else None


def parse_timestamp(value: object) -> float | None:
    """Unix seconds from an RFC 3339 string (``Z`` or ``+00:00``, 0-9 fractional digits) or a number."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, str) or not value:
        return None
    match = re.fullmatch(
        r"(\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2})(?:\.(\d+))?(Z|[+-]\d{2}:?\d{2})?", value.strip()
    )
    if not match:
        return None
    base, fraction, zone = match.groups()
    stamp = datetime.fromisoformat(base.replace(" ", "T") + _zone(zone)).timestamp()
    return stamp + (float("0." + fraction) if fraction else 0.0)


def _zone(zone: str | None) -> str:
    if zone is None or zone == "Z":
        return "+00:00"
    return zone if ":" in zone else zone[:3] + ":" + zone[3:]


def as_dict(value: object) -> dict[str, Any]:
    """`value` if it is a JSON object, else an empty one (wire fields may be null or missing)."""
    return value if isinstance(value, dict) else {}

"""Error translation, Retry-After parsing and resumable line streaming (httpx.MockTransport)."""

from __future__ import annotations

import email.utils
import time

import httpx
import pytest

from durabatch.providers import errors
from durabatch.providers.http import ProviderHttp
from durabatch.providers.http_errors import error_for_response, parse_retry_after
from durabatch.providers.wire import parse_timestamp
from tests.providers.conftest import SECRET, mock_client


def _http(handler, attempts: int = 3) -> ProviderHttp:
    return ProviderHttp(
        "openai",
        mock_client(handler),
        "http://p.test/v1",
        lambda: {"Authorization": f"Bearer {SECRET}"},
        download_attempts=attempts,
        retry_delay=0.001,
    )


@pytest.mark.parametrize(
    ("status", "cls", "retryable"),
    [
        (400, errors.BadRequest, False),
        (413, errors.BadRequest, False),
        (422, errors.BadRequest, False),
        (401, errors.AuthenticationFailed, False),
        (403, errors.AuthenticationFailed, False),
        (404, errors.NotFound, False),
        (429, errors.RateLimited, True),
        (500, errors.ProviderUnavailable, True),
        (503, errors.ProviderUnavailable, True),
        (529, errors.ProviderUnavailable, True),
    ],
)
async def test_status_classification(status: int, cls: type, retryable: bool) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        body = {"error": {"message": f"boom for {SECRET}", "type": "x_error", "param": None, "code": None}}
        return httpx.Response(status, json=body, headers={"x-request-id": "req_123"})

    with pytest.raises(errors.ProviderError) as info:
        await _http(handler).request("GET", "/batches")
    err: errors.ProviderError = info.value
    assert type(err) is cls
    assert err.retryable is retryable
    assert err.status_code == status
    assert err.request_id == "req_123"
    assert "boom for" in str(err)
    assert SECRET not in str(err) and SECRET not in err.message and SECRET not in repr(err.args)


def test_provider_message_shapes() -> None:
    anthropic = httpx.Response(
        404,
        json={
            "type": "error",
            "error": {"type": "not_found_error", "message": "gone"},
            "request_id": "req_a",
        },
    )
    err = error_for_response("anthropic", anthropic)
    assert isinstance(err, errors.NotFound)
    assert err.request_id == "req_a" and "not_found_error: gone" in err.message

    gemini = httpx.Response(
        429,
        json={
            "error": {
                "code": 429,
                "message": "quota",
                "status": "RESOURCE_EXHAUSTED",
                "details": [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "19s"}],
            }
        },
    )
    err = error_for_response("gemini", gemini)
    assert isinstance(err, errors.RateLimited) and err.retry_after == 19.0
    assert "RESOURCE_EXHAUSTED: quota" in err.message

    quota = httpx.Response(429, json={"error": {"message": "pay", "type": "x", "code": "insufficient_quota"}})
    assert isinstance(error_for_response("openai", quota), errors.QuotaExceeded)
    text = httpx.Response(502, text="<html>bad gateway</html>")
    assert "bad gateway" in error_for_response("openai", text).message


def test_retry_after_forms() -> None:
    assert parse_retry_after({"retry-after-ms": "1500", "retry-after": "9"}) == 1.5
    assert parse_retry_after({"Retry-After": "7"}) == 7.0
    when = email.utils.formatdate(time.time() + 30, usegmt=True)
    assert 25 < (parse_retry_after({"retry-after": when}) or 0) <= 31
    assert parse_retry_after({}) is None
    assert parse_retry_after(
        {}, {"error": {"details": [{"@type": "google.rpc.RetryInfo", "retryDelay": "0.5s"}]}}
    )


async def test_transport_errors_are_retryable() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectTimeout("timed out", request=request)

    with pytest.raises(errors.TransportError) as info:
        await _http(handler).request("GET", "/batches")
    assert info.value.retryable


def test_parse_timestamp() -> None:
    assert parse_timestamp("2024-09-24T18:37:24Z") == 1727203044.0
    assert parse_timestamp("2024-09-24T18:37:24.5+00:00") == 1727203044.5
    assert parse_timestamp("2024-09-24T18:37:24.123456789Z") == pytest.approx(1727203044.123456789)
    assert parse_timestamp(12) == 12.0
    assert parse_timestamp(None) is None


# -- resumable streaming ------------------------------------------------------------------------

LINES = [f'{{"n":{i},"t":"line\u2028{i}"}}'.encode() for i in range(50)]
FILE = b"\r\n".join(LINES) + b"\r\n"


class CuttingServer:
    """Serves FILE, cutting the first `cuts` responses after `cut_at` bytes; honours Range if asked."""

    def __init__(self, cuts: int, cut_at: int, ranges: bool) -> None:
        self.cuts, self.cut_at, self.ranges = cuts, cut_at, ranges
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        start = 0
        status = 200
        headers = {}
        rng = request.headers.get("range")
        if rng and self.ranges:
            start = int(rng.removeprefix("bytes=").rstrip("-"))
            status = 206
            headers["content-range"] = f"bytes {start}-{len(FILE) - 1}/{len(FILE)}"
        data = FILE[start:]
        if self.cuts > 0:
            self.cuts -= 1
            cut = data[: self.cut_at]

            async def broken():
                yield cut
                raise httpx.RemoteProtocolError(
                    "peer closed connection without sending complete message body"
                )

            return httpx.Response(status, headers=headers, content=broken())
        return httpx.Response(status, headers=headers, content=data)


@pytest.mark.parametrize("ranges", [True, False])
async def test_resume_yields_each_line_once(ranges: bool) -> None:
    server = CuttingServer(cuts=3, cut_at=333, ranges=ranges)
    got = [item async for item in _http(server, attempts=3).stream_lines("/files/f/content")]
    assert [g.record["n"] for g in got] == list(range(50))
    assert [g.lines for g in got] == list(range(1, 51))
    assert got[-1].offset == len(FILE)
    assert len(server.requests) == 4
    if ranges:
        assert server.requests[1].headers["range"].startswith("bytes=")
        assert all(int(r.headers["range"][6:-1]) > 0 for r in server.requests[1:])


async def test_resume_from_cursor() -> None:
    server = CuttingServer(cuts=0, cut_at=0, ranges=True)
    http = _http(server)
    first = [item async for item in http.stream_lines("/f")][:10]
    rest = [item async for item in http.stream_lines("/f", start_offset=first[-1].offset, start_lines=10)]
    assert [g.record["n"] for g in rest] == list(range(10, 50))
    assert server.requests[-1].headers["range"] == f"bytes={first[-1].offset}-"


async def test_resume_gives_up_after_bounded_attempts() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        async def broken():
            raise httpx.ReadError("connection reset")
            yield b""

        return httpx.Response(200, content=broken())

    with pytest.raises(errors.TransportError, match="download failed 3 times"):
        [item async for item in _http(handler, attempts=3).stream_lines("/f")]


async def test_truncated_tail_is_retried() -> None:
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        # first answer ends cleanly but in the middle of a line (truncated body)
        return httpx.Response(200, content=FILE[:-7] if len(calls) == 1 else FILE)

    got = [item async for item in _http(handler).stream_lines("/f")]
    assert [g.record["n"] for g in got] == list(range(50))
    assert len(calls) == 2


async def test_download_errors_classified() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(404, json={"error": {"message": "No such File object: file-x"}})

    with pytest.raises(errors.NotFound):
        [item async for item in _http(handler).stream_lines("/f")]


async def test_no_credentials_for_other_hosts() -> None:
    seen: dict[str, str | None] = {}

    def handler(request: httpx.Request) -> httpx.Response:
        seen[request.url.host] = request.headers.get("authorization")
        return httpx.Response(200, json={})

    http = _http(handler)
    await http.request("POST", "https://elsewhere.test/upload?id=1")
    await http.request("GET", "http://p.test/v1/batches")
    assert seen == {"elsewhere.test": None, "p.test": f"Bearer {SECRET}"}

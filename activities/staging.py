"""stage_requests: stream the batch's JSONL into PostgreSQL (COPY), validating every line.

All or nothing: the whole file is staged in one transaction, so a bad line (named by its line
number) leaves nothing behind, and a retry after a crash starts clean. Requests are assigned to
shards that respect the provider's limits (count, bytes) as they stream past.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
from temporalio import activity

from activities.deps import ActivityDeps
from activities.errors import invalid_input
from activities.heartbeat import heartbeating
from durabatch.models import ShardPlan, StageInput, StageResult
from durabatch.providers.base import ProviderLimits
from durabatch.providers.formats import InvalidRequestLine, check_endpoint, model_of, normalize_line
from durabatch.store import batches, requests

__all__ = ["StagingActivities"]

_COPY_CHUNK = 2000
_READ_CHUNK = 1 << 16


class _ShardPlanner:
    """Greedy: fill a shard until the next request would break the count or byte limit."""

    def __init__(self, limits: ProviderLimits) -> None:
        self._limits = limits
        self.plans: list[ShardPlan] = []

    def assign(self, size: int) -> int:
        current = self.plans[-1] if self.plans else None
        if (
            current is None
            or current.request_count + 1 > self._limits.max_requests
            or current.byte_size + size > self._limits.max_bytes
        ):
            current = ShardPlan(shard=len(self.plans), request_count=0, byte_size=0)
            self.plans.append(current)
        current.request_count += 1
        current.byte_size += size
        return current.shard


async def _file_lines(path: Path) -> AsyncIterator[tuple[int, bytes]]:
    # Line numbers count every line, blank ones included, so errors point at the right line.
    with path.open("rb") as fh:
        pending = b""
        line_no = 0
        while chunk := fh.read(_READ_CHUNK):
            pending += chunk
            *complete, pending = pending.split(b"\n")
            for line in complete:
                line_no += 1
                yield line_no, line
        if pending:
            yield line_no + 1, pending


async def _url_lines(http: httpx.AsyncClient, url: str) -> AsyncIterator[tuple[int, bytes]]:
    async with http.stream("GET", url) as response:
        if response.status_code >= 400:
            raise invalid_input(f"requests_uri {url} answered HTTP {response.status_code}")
        pending = b""
        line_no = 0
        async for chunk in response.aiter_bytes():
            pending += chunk
            *complete, pending = pending.split(b"\n")
            for line in complete:
                line_no += 1
                yield line_no, line
        if pending:
            yield line_no + 1, pending


async def _inline_lines(items: list[dict[str, Any]]) -> AsyncIterator[tuple[int, Any]]:
    for i, item in enumerate(items, start=1):
        yield i, item


class StagingActivities:
    def __init__(self, deps: ActivityDeps) -> None:
        self._deps = deps

    @activity.defn(name="stage_requests")
    async def stage_requests(self, inp: StageInput) -> StageResult:
        async with heartbeating():
            return await self._stage_requests(inp)

    async def _stage_requests(self, inp: StageInput) -> StageResult:
        # The batch row is written first, outside the staging transaction, so that a batch whose
        # input is refused (endpoint, source or any line) still has a row to end `failed` on:
        # finalize_batch needs it.
        await batches.create_batch(
            self._deps.pool,
            batch_id=inp.batch_id,
            workflow_id=inp.workflow_id,
            provider=inp.provider,
            endpoint=inp.endpoint,
            model=inp.model,
            metadata=inp.metadata,
        )
        try:
            check_endpoint(inp.provider, inp.endpoint)
        except ValueError as exc:
            raise invalid_input(f"endpoint: {exc}") from None
        limits = self._deps.provider(inp.provider).limits
        source = self._source(inp)
        planner = _ShardPlanner(limits)
        seen: set[str] = set()
        model = inp.model
        count = 0
        total_bytes = 0
        buffer: list[tuple[Any, ...]] = []
        async with self._deps.pool.acquire() as conn, conn.transaction():
            await requests.delete_requests(conn, inp.batch_id)
            async for line_no, raw in source:
                obj = _decode(raw, line_no)
                if obj is None:
                    continue
                try:
                    line = normalize_line(obj, line_no, inp.provider, inp.endpoint)
                except InvalidRequestLine as exc:
                    raise invalid_input(str(exc)) from None
                if line.custom_id in seen:
                    raise invalid_input(f"line {line_no}: duplicate custom_id {line.custom_id!r}")
                seen.add(line.custom_id)
                body = dict(line.body)
                line_model = model_of(inp.provider, body)
                if line_model is None and model is not None and inp.provider != "gemini":
                    body["model"] = model
                elif line_model is not None:
                    if model is None:
                        model = line_model
                    elif line_model != model:
                        raise invalid_input(
                            f"line {line_no}: model {line_model!r} differs from the batch's model {model!r}; "
                            "a provider batch holds one model"
                        )
                size = len(json.dumps(body, separators=(",", ":")).encode())
                if size > limits.max_line_bytes:
                    raise invalid_input(
                        f"line {line_no}: request is {size} bytes, over {inp.provider}'s limit of "
                        f"{limits.max_line_bytes} bytes per request"
                    )
                shard = planner.assign(size)
                buffer.append((inp.batch_id, line.custom_id, line_no, shard, 0, body, size))
                count += 1
                total_bytes += size
                if len(buffer) >= _COPY_CHUNK:
                    await requests.copy_requests(conn, buffer)
                    buffer.clear()
                    activity.heartbeat(line_no)
            if buffer:
                await requests.copy_requests(conn, buffer)
            if count == 0:
                where = "requests" if inp.requests is not None else f"requests_uri {inp.requests_uri!r}"
                raise invalid_input(f"{where}: the batch has no requests (empty input or blank lines only)")
            await batches.set_status(conn, inp.batch_id, "pending", model=model, request_count=count)
        await requests.analyze(self._deps.pool)
        self._deps.metrics.batch_started(inp.provider)
        return StageResult(request_count=count, byte_size=total_bytes, model=model, shards=planner.plans)

    def _source(self, inp: StageInput) -> AsyncIterator[tuple[int, Any]]:
        if inp.requests is not None:
            return _inline_lines(inp.requests)
        uri = inp.requests_uri or ""
        if uri.startswith(("http://", "https://")):
            return _url_lines(self._deps.http, uri)
        path = Path(uri.removeprefix("file://"))
        if not path.is_file():
            raise invalid_input(f"requests_uri {uri!r}: no such file on the worker")
        return _file_lines(path)


def _decode(raw: Any, line_no: int) -> Any:
    """A parsed JSON value, or None for a blank line. Inline items are already parsed."""
    if not isinstance(raw, bytes):
        return raw
    raw = raw.removesuffix(b"\r")
    if line_no == 1:
        raw = raw.removeprefix(b"\xef\xbb\xbf")  # a UTF-8 byte order mark, as some editors write
    if not raw.strip():
        return None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise invalid_input(f"line {line_no}: not valid UTF-8 (byte {exc.start})") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise invalid_input(f"line {line_no}: not valid JSON ({exc.msg} at column {exc.colno})") from None

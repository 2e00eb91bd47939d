"""Anthropic: Message Batches (the real-time Messages endpoint is in `realtime_routes`)."""

from __future__ import annotations

import functools
import re
from typing import Any

from aiohttp import web

from durabatch.emulator.batches import Batch, RequestError, batch_markers, item_from_marker
from durabatch.emulator.errors import error_response
from durabatch.emulator.files import StoredFile, stream_file
from durabatch.emulator.results import anthropic_result_lines
from durabatch.emulator.route_helpers import (
    batch_route,
    create_response_lost,
    int_query,
    items_after,
    state_of,
    truncation,
)
from durabatch.emulator.state import EmulatorState, new_id
from durabatch.emulator.timeline import Phase
from durabatch.emulator.wire import base_url, drop_connection, json_ok, read_json, rfc3339

__all__ = ["message_batch_json", "params_error", "register"]

CUSTOM_ID = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")


def params_error(params: dict[str, Any]) -> RequestError | None:
    """Params are validated only when the batch runs, and come back as `errored` results."""
    for field in ("model", "max_tokens", "messages"):
        if field not in params:
            return RequestError(400, f"{field}: Field required", "invalid_request_error")
    mt = params["max_tokens"]
    if not isinstance(mt, int) or mt < 1:
        return RequestError(
            400, "max_tokens: Input should be greater than or equal to 1", "invalid_request_error"
        )
    return None


def _counts(batch: Batch, phase: Phase, k: int) -> dict[str, int]:
    counts = {"processing": 0, "succeeded": 0, "errored": 0, "canceled": 0, "expired": 0}
    if phase not in (Phase.COMPLETED, Phase.FAILED, Phase.EXPIRED, Phase.CANCELLED):
        # Only `processing` moves before the batch ends (ANT-SDK docstring).
        counts["processing"] = batch.n
        return counts
    failed = batch.failed_among(k)
    counts["succeeded"] = k - failed
    counts["errored"] = failed
    counts["canceled" if phase == Phase.CANCELLED else "expired"] = batch.n - k
    return counts


def message_batch_json(batch: Batch, state: EmulatorState, origin: str) -> dict[str, Any]:
    phase, k = batch.progress(state.now())
    entered = batch.timeline.entered
    ended = batch.timeline.terminal
    if ended:
        status = "ended"
    elif phase == Phase.CANCELLING:
        status = "canceling"
    else:
        status = "in_progress"
    end_at = entered.get(phase) if ended else None
    cancel_at = entered.get(Phase.CANCELLING)
    return {
        "id": batch.id,
        "type": "message_batch",
        "processing_status": status,
        "request_counts": _counts(batch, phase, k),
        "ended_at": rfc3339(end_at) if end_at is not None else None,
        "created_at": rfc3339(batch.created_at),
        "expires_at": rfc3339(batch.timeline.expires_at),
        "archived_at": None,
        "cancel_initiated_at": rfc3339(cancel_at) if cancel_at is not None else None,
        "results_url": f"{origin}/v1/messages/batches/{batch.id}/results" if ended else None,
    }


def _bad(request: web.Request, message: str, status: int = 400) -> web.Response:
    return error_response(request, status, message)


async def create_batch(request: web.Request) -> web.Response:
    state = state_of(request)
    if (request.content_length or 0) > state.config.anthropic_max_body_bytes:
        return error_response(request, 413, "Request exceeds the maximum allowed number of bytes.")
    body = await read_json(request)
    if not isinstance(body, dict):
        return _bad(request, "There was an issue with your request body: it is not valid JSON.")
    requests = body.get("requests")
    if not isinstance(requests, list):
        return _bad(request, "requests: Field required")
    if not requests:
        return _bad(request, "requests: List should have at least 1 item after validation, not 0")
    if len(requests) > state.config.anthropic_max_requests:
        return _bad(
            request,
            f"requests: List should have at most {state.config.anthropic_max_requests} items after "
            f"validation, not {len(requests)}",
        )
    seen: set[str] = set()
    created = state.now()
    batch = Batch(
        id=new_id("anthropic_batch"),
        provider="anthropic",
        endpoint="/v1/messages",
        model=None,
        created_at=created,
        items=[],
        timeline=state.new_timeline(len(requests), created),
    )
    for i, r in enumerate(requests):
        if not isinstance(r, dict):
            return _bad(request, f"requests.{i}: Input should be a valid dictionary")
        cid, params = r.get("custom_id"), r.get("params")
        if cid is None:
            return _bad(request, f"requests.{i}.custom_id: Field required")
        if params is None:
            return _bad(request, f"requests.{i}.params: Field required")
        if not isinstance(cid, str) or not CUSTOM_ID.match(cid):
            return _bad(
                request, f"requests.{i}.custom_id: String should match pattern '^[a-zA-Z0-9_-]{{1,64}}$'"
            )
        if not isinstance(params, dict):
            return _bad(request, f"requests.{i}.params: Input should be a valid dictionary")
        if params.get("stream"):
            return _bad(request, f"requests.{i}.params.stream: streaming is not supported in batches")
        if cid in seen:
            return _bad(request, f"requests.{i}.custom_id: Duplicate custom_id '{cid}' in batch requests")
        seen.add(cid)
        batch.items.append(item_from_marker(cid, params, params_error(params)))
    batch.model = str(batch.items[0].body.get("model") or "") or None
    specs = state.faults.take_batch_faults("anthropic") + batch_markers(batch.items[0].cid)
    for s in specs:
        state.stats.faults_fired[s.fault] += 1
    batch.apply_faults([s for s in specs if s.fault != "token_limit_exceeded"])
    state.add_batch(batch, [])
    if create_response_lost(request):
        return drop_connection(request)
    return json_ok(message_batch_json(batch, state, base_url(request)))


def _no_batch(request: web.Request, batch_id: str) -> web.Response:
    return error_response(request, 404, "The requested resource could not be found.")


_batch_route = batch_route(_no_batch, provider="anthropic")


@_batch_route
async def retrieve_batch(request: web.Request, batch: Batch) -> web.Response:
    state_of(request).stats.status_reads[batch.id] += 1
    return json_ok(message_batch_json(batch, state_of(request), base_url(request)))


async def list_batches(request: web.Request) -> web.Response:
    state = state_of(request)
    q = request.query
    ids = state.listing("anthropic")
    limit = int_query(request, "limit", 20)
    if limit is None or not 1 <= limit <= 1000:
        return _bad(request, "limit: Input should be between 1 and 1000")
    if "after_id" in q:
        rest = items_after(ids, q["after_id"], str)
        page, has_more = rest[:limit], len(rest) > limit
    elif "before_id" in q:
        before = q["before_id"]
        head = ids[: ids.index(before)] if before in ids else []
        page, has_more = head[-limit:], len(head) > limit
    else:
        page, has_more = ids[:limit], len(ids) > limit
    origin = base_url(request)
    return json_ok(
        {
            "data": [message_batch_json(state.batches[i], state, origin) for i in page],
            "has_more": has_more,
            "first_id": page[0] if page else None,
            "last_id": page[-1] if page else None,
        }
    )


@_batch_route
async def cancel_batch(request: web.Request, batch: Batch) -> web.Response:
    state = state_of(request)
    if not batch.timeline.cancel(state.now()):
        return _bad(request, f"Batch {batch.id} has already ended and cannot be canceled.")
    return json_ok(message_batch_json(batch, state, base_url(request)))


@_batch_route
async def delete_batch(request: web.Request, batch: Batch) -> web.Response:
    state = state_of(request)
    batch.timeline.refresh(state.now())
    if not batch.timeline.terminal:
        return _bad(
            request, f"Batch {batch.id} is still in progress; cancel it and wait for it to end first."
        )
    batch.extra["deleted"] = True
    return json_ok({"id": batch.id, "type": "message_batch_deleted"})


@_batch_route
async def batch_results(request: web.Request, batch: Batch) -> web.StreamResponse:
    state = state_of(request)
    phase, k = batch.progress(state.now())
    if not batch.timeline.terminal:
        return _bad(request, f"Batch {batch.id} has not ended yet; results are not available.")
    f = batch.extra.get("results_file")
    if not isinstance(f, StoredFile):
        pad = state.config.output_padding_bytes
        f = StoredFile(
            batch.id,
            f"{batch.id}_results.jsonl",
            "results",
            batch.timeline.entered[phase],
            lines=functools.partial(anthropic_result_lines, batch, k, pad),
        )
        batch.extra["results_file"] = f
        state.touch()
    state.stats.downloads["anthropic"] += 1
    return await stream_file(
        request, f, content_type="application/x-jsonl", honour_range=True, cut_after=truncation(request, f)
    )


def register(app: web.Application) -> None:
    r = app.router
    r.add_post("/v1/messages/batches", create_batch, name="anthropic:batches.create")
    r.add_get("/v1/messages/batches", list_batches, name="anthropic:batches.list")
    r.add_get("/v1/messages/batches/{batch_id}", retrieve_batch, name="anthropic:batches.retrieve")
    r.add_delete("/v1/messages/batches/{batch_id}", delete_batch, name="anthropic:batches.delete")
    r.add_post("/v1/messages/batches/{batch_id}/cancel", cancel_batch, name="anthropic:batches.cancel")
    r.add_get("/v1/messages/batches/{batch_id}/results", batch_results, name="anthropic:batches.results")

"""Gemini Developer API: batch mode (Operations). The Files API as batch uses it is in
`gemini_files`, generateContent in `realtime_routes`."""

from __future__ import annotations

import functools
import json
from typing import Any

from aiohttp import web

from durabatch.emulator import gemini_files
from durabatch.emulator.batches import Batch, RequestError, batch_markers, item_from_marker
from durabatch.emulator.files import StoredFile
from durabatch.emulator.results import gemini_inline_responses, gemini_result_lines
from durabatch.emulator.route_helpers import (
    batch_route,
    create_response_lost,
    gemini_error,
    int_query,
    page_after,
    state_of,
)
from durabatch.emulator.state import EmulatorState, new_id
from durabatch.emulator.timeline import Phase
from durabatch.emulator.wire import base_url, drop_connection, json_ok, read_json, rfc3339

__all__ = ["operation_json", "register", "request_error"]

BATCH_TYPE = "type.googleapis.com/google.ai.generativelanguage.v1beta.GenerateContentBatch"
OUTPUT_TYPE = "type.googleapis.com/google.ai.generativelanguage.v1beta.GenerateContentBatchOutput"
_STATES = {
    Phase.VALIDATING: "BATCH_STATE_PENDING",
    Phase.RUNNING: "BATCH_STATE_RUNNING",
    Phase.FINALIZING: "BATCH_STATE_RUNNING",
    Phase.CANCELLING: "BATCH_STATE_RUNNING",
    Phase.COMPLETED: "BATCH_STATE_SUCCEEDED",
    Phase.FAILED: "BATCH_STATE_FAILED",
    Phase.EXPIRED: "BATCH_STATE_EXPIRED",
    Phase.CANCELLED: "BATCH_STATE_CANCELLED",
}


def _stats(batch: Batch, phase: Phase, k: int) -> dict[str, str]:
    failed = batch.failed_among(k)
    values = {
        "requestCount": batch.n,
        "successfulRequestCount": k - failed,
        "failedRequestCount": failed,
        "pendingRequestCount": 0 if batch.timeline.terminal else batch.n - k,
    }
    # int64 travels as a JSON string and proto3 JSON leaves zero values out.
    return {name: str(v) for name, v in values.items() if v}


def _output(batch: Batch, state: EmulatorState, k: int, origin: str) -> dict[str, Any]:
    if batch.extra.get("inline"):
        return {"inlinedResponses": {"inlinedResponses": gemini_inline_responses(batch, k)}}
    f = batch.extra.get("output_file")
    if not isinstance(f, StoredFile):
        pad = state.config.output_padding_bytes
        file_id = "batch-" + batch.id.removeprefix("batches/")
        f = StoredFile(
            file_id,
            f"{file_id}.jsonl",
            "GENERATED",
            batch.timeline.entered[batch.timeline.phase],
            lines=functools.partial(gemini_result_lines, batch, k, pad),
        )
        batch.extra["output_file"] = state.gemini_files.add(f)
        state.touch()
    return {"responsesFile": "files/" + f.id}


def operation_json(batch: Batch, state: EmulatorState, origin: str) -> dict[str, Any]:
    now = state.now()
    phase, k = batch.progress(now)
    tl = batch.timeline
    meta: dict[str, Any] = {
        "@type": BATCH_TYPE,
        "model": batch.model,
        "name": batch.id,
        "displayName": batch.extra.get("display_name", ""),
        "inputConfig": batch.extra["input_config"],
        "createTime": rfc3339(batch.created_at),
        "updateTime": rfc3339(tl.entered.get(phase, batch.created_at)),
        "state": _STATES[phase],
        "batchStats": _stats(batch, phase, k),
    }
    op: dict[str, Any] = {"name": batch.id, "metadata": meta}
    if not tl.terminal:
        return op
    meta["endTime"] = rfc3339(tl.entered[phase])
    op["done"] = True
    if phase == Phase.FAILED:
        op["error"] = batch.extra.get("error") or {"code": 13, "message": "Batch job failed."}
        return op
    output = _output(batch, state, k, origin)
    meta["output"] = output
    if phase == Phase.COMPLETED:
        op["response"] = {"@type": OUTPUT_TYPE, **output}
    elif phase == Phase.CANCELLED:
        op["error"] = {"code": 1, "message": "The batch was cancelled."}
    else:
        op["error"] = {"code": 4, "message": "The batch expired before all requests were processed."}
    return op


def request_error(req: Any) -> RequestError | None:
    if not isinstance(req, dict) or not req.get("contents"):
        return RequestError(
            400, "* GenerateContentRequest.contents: contents is not specified", "INVALID_ARGUMENT"
        )
    return None


async def create_batch(request: web.Request) -> web.Response:
    state = state_of(request)
    model = "models/" + request.match_info["model"]
    if (request.content_length or 0) > state.config.gemini_max_inline_bytes:
        return gemini_error(
            request,
            400,
            f"Request payload size exceeds the limit: {state.config.gemini_max_inline_bytes} bytes.",
        )
    body = await read_json(request)
    spec = body.get("batch") if isinstance(body, dict) else None
    if not isinstance(spec, dict) or not isinstance(spec.get("inputConfig"), dict):
        return gemini_error(request, 400, "* GenerateContentBatch.input_config: input_config is required")
    cfg = spec["inputConfig"]
    created = state.now()
    batch = Batch(
        id=new_id("gemini_batch"),
        provider="gemini",
        endpoint=":generateContent",
        model=model,
        created_at=created,
        items=[],
        timeline=state.new_timeline(0, created),
        extra={"display_name": str(spec.get("displayName") or ""), "input_config": cfg},
    )
    if "requests" in cfg:
        reqs = (cfg.get("requests") or {}).get("requests") or []
        batch.extra["inline"] = True
        for i, r in enumerate(reqs):
            meta = r.get("metadata") if isinstance(r, dict) else None
            key = str((meta or {}).get("key", i)) if isinstance(meta, dict) else str(i)
            req = r.get("request") if isinstance(r, dict) else None
            item = item_from_marker(key, req if isinstance(req, dict) else {}, request_error(req))
            item.meta = meta if isinstance(meta, dict) else None
            batch.items.append(item)
    elif "fileName" in cfg:
        f = state.gemini_files.get(str(cfg["fileName"]).removeprefix("files/"))
        if f is None or f.data is None:
            return gemini_error(request, 404, f"File {cfg['fileName']} not found.", "NOT_FOUND")
        _parse_file(batch, f.data)
    else:
        return gemini_error(
            request, 400, "* GenerateContentBatch.input_config: one of file_name or requests is required"
        )
    batch.timeline.n = batch.n
    specs = state.faults.take_batch_faults("gemini") + batch_markers(batch.extra["display_name"])
    for s in specs:
        state.stats.faults_fired[s.fault] += 1
        if s.fault == "token_limit_exceeded":
            batch.timeline.fail_validation = True
            batch.extra["error"] = {
                "code": 8,
                "message": f"Enqueued token limit reached for {model}. Please try again later.",
            }
    batch.apply_faults([s for s in specs if s.fault != "token_limit_exceeded"])
    state.add_batch(batch, [batch.extra["display_name"]])
    if create_response_lost(request):
        return drop_connection(request)
    return json_ok(operation_json(batch, state, base_url(request)))


def _parse_file(batch: Batch, data: bytes) -> None:
    for lineno, raw in enumerate(data.split(b"\n"), start=1):
        raw = raw.removesuffix(b"\r")
        if not raw.strip():
            continue
        try:
            obj = json.loads(raw)
        except ValueError:
            obj = None
        if not isinstance(obj, dict) or "request" not in obj:
            batch.timeline.fail_validation = True
            batch.extra["error"] = {"code": 3, "message": f"Invalid JSONL input at line {lineno}."}
            batch.items = []
            return
        req = obj["request"]
        key = str(obj.get("key", lineno))
        batch.items.append(item_from_marker(key, req if isinstance(req, dict) else {}, request_error(req)))


def _no_batch(request: web.Request, name: str) -> web.Response:
    return gemini_error(request, 404, f"Batch {name} not found.", "NOT_FOUND")


#: a batch's name is `batches/{batch_id}`
_batch_route = batch_route(_no_batch, provider="gemini", prefix="batches/")


@_batch_route
async def get_batch(request: web.Request, batch: Batch) -> web.Response:
    state_of(request).stats.status_reads[batch.id] += 1
    return json_ok(operation_json(batch, state_of(request), base_url(request)))


async def list_batches(request: web.Request) -> web.Response:
    state = state_of(request)
    size = int_query(request, "pageSize", 50)
    size = max(1, min(1000, 50 if size is None else size))
    page, has_more = page_after(state.listing("gemini"), request.query.get("pageToken"), size)
    origin = base_url(request)
    body: dict[str, Any] = {"operations": [operation_json(state.batches[i], state, origin) for i in page]}
    if has_more:
        body["nextPageToken"] = page[-1]
    return json_ok(body)


@_batch_route
async def cancel_batch(request: web.Request, batch: Batch) -> web.Response:
    state = state_of(request)
    if not batch.timeline.cancel_now(state.now()):
        return gemini_error(
            request, 400, f"Batch {batch.id} is already in a terminal state.", "FAILED_PRECONDITION"
        )
    return json_ok({})


@_batch_route
async def delete_batch(request: web.Request, batch: Batch) -> web.Response:
    state = state_of(request)
    batch.timeline.cancel_now(state.now())
    batch.extra["deleted"] = True
    return json_ok({})


def register(app: web.Application) -> None:
    """Gemini routes under `/v1beta` and, where OpenAI does not use the same path, `/v1` (the
    google-genai SDK's default version); app.DUAL_ROUTES holds the shared `/v1` paths."""
    gemini_files.register(app)
    r = app.router
    seg, bid = "{model:[^/:]+}", "{batch_id:[^/:]+}"
    for v in ("v1beta", "v1"):
        r.add_post(f"/{v}/models/{seg}:batchGenerateContent", create_batch, name=f"gemini:batches.create:{v}")
        r.add_post(f"/{v}/batches/{bid}:cancel", cancel_batch, name=f"gemini:batches.cancel:{v}")
    r.add_get("/v1beta/batches", list_batches, name="gemini:batches.list")
    r.add_get(f"/v1beta/batches/{bid}", get_batch, name="gemini:batches.retrieve")
    r.add_delete(f"/v1beta/batches/{bid}", delete_batch, name="gemini:batches.delete")

"""OpenAI: Batches (validation, lifecycle, result files). The Files API is in `openai_files`, the
real-time endpoints in `realtime_routes`."""

from __future__ import annotations

import functools
from typing import Any

from aiohttp import web

from durabatch.emulator import openai_files
from durabatch.emulator.batches import Batch, batch_markers
from durabatch.emulator.errors import error_response
from durabatch.emulator.files import StoredFile
from durabatch.emulator.openai_input import parse_input
from durabatch.emulator.results import openai_error_lines, openai_output_lines
from durabatch.emulator.route_helpers import (
    batch_route,
    create_response_lost,
    int_query,
    missing_parameter,
    page_after,
    state_of,
)
from durabatch.emulator.state import EmulatorState, new_id
from durabatch.emulator.timeline import TERMINAL, Phase
from durabatch.emulator.wire import drop_connection, json_ok, read_json

__all__ = ["batch_json", "register"]

ENDPOINTS = frozenset(
    {
        "/v1/responses",
        "/v1/chat/completions",
        "/v1/embeddings",
        "/v1/completions",
        "/v1/moderations",
        "/v1/images/generations",
        "/v1/images/edits",
        "/v1/videos",
    }
)


# ---------------------------------------------------------------- batches


def _ensure_files(batch: Batch, processed: int, state: EmulatorState) -> None:
    if batch.files_made or batch.timeline.phase not in TERMINAL:
        return
    batch.files_made = True
    state.touch()  # the file ids are now public: a restarted emulator must keep them
    phase = batch.timeline.phase
    if phase == Phase.FAILED:
        return
    pad = state.config.output_padding_bytes
    fails = batch.failed_among(processed)
    at = batch.timeline.entered.get(phase, state.now())
    # Result lines come from functools.partial (not lambdas) so that a saved state can pickle them.
    if processed - fails > 0 and not batch.extra.get("no_output_file"):
        out = StoredFile(
            new_id("openai_file"),
            f"{batch.id}_output.jsonl",
            "batch_output",
            at,
            lines=functools.partial(openai_output_lines, batch, processed, pad),
        )
        batch.output_file_id = state.openai_files.add(out).id
    if fails > 0 or (processed < batch.n and phase in (Phase.EXPIRED, Phase.CANCELLED)):
        err = StoredFile(
            new_id("openai_file"),
            f"{batch.id}_error.jsonl",
            "batch_output",
            at,
            lines=functools.partial(openai_error_lines, batch, processed, pad),
        )
        batch.error_file_id = state.openai_files.add(err).id


def batch_json(batch: Batch, state: EmulatorState) -> dict[str, Any]:
    phase, k = batch.progress(state.now())
    _ensure_files(batch, k, state)
    entered = batch.timeline.entered

    def ts(p: Phase) -> int | None:
        return int(entered[p]) if p in entered else None

    n = batch.n
    failed = batch.failed_among(k)
    completed = k - failed
    if phase == Phase.EXPIRED:
        failed += n - k
    total = 0 if phase in (Phase.VALIDATING, Phase.FAILED) else n
    if total == 0:
        completed = failed = 0
    tin, tout = batch.in_tok_prefix[k], batch.out_tok_prefix[k]
    body: dict[str, Any] = {
        "id": batch.id,
        "object": "batch",
        "endpoint": batch.endpoint,
        "errors": {"object": "list", "data": batch.errors} if phase == Phase.FAILED else None,
        "input_file_id": batch.extra["input_file_id"],
        "completion_window": "24h",
        # `unknown_status`: a status no client has a mapping for (as a provider might add one)
        # (until a cancel: then it is cancelling and cancelled as usual, so a client can still end it)
        "status": "emulator_unknown_status"
        if batch.extra.get("unknown_status") and phase not in (Phase.CANCELLING, Phase.CANCELLED)
        else phase.value,
        "output_file_id": batch.output_file_id,
        "error_file_id": batch.error_file_id,
        "created_at": int(batch.created_at),
        "in_progress_at": ts(Phase.RUNNING),
        "expires_at": int(batch.timeline.expires_at),
        "finalizing_at": ts(Phase.FINALIZING),
        "completed_at": ts(Phase.COMPLETED),
        "failed_at": ts(Phase.FAILED),
        "expired_at": ts(Phase.EXPIRED),
        "cancelling_at": ts(Phase.CANCELLING),
        "cancelled_at": ts(Phase.CANCELLED),
        "request_counts": {"total": total, "completed": completed, "failed": failed},
        "usage": {
            "input_tokens": tin,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": tout,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": tin + tout,
        },
        "metadata": batch.metadata,
    }
    if batch.model:
        body["model"] = batch.model
    return body


def _metadata_error(request: web.Request, metadata: Any) -> web.Response | None:
    if metadata is None:
        return None
    ok = (
        isinstance(metadata, dict)
        and len(metadata) <= 16
        and all(isinstance(k, str) and len(k) <= 64 for k in metadata)
        and all(isinstance(v, str) and len(v) <= 512 for v in metadata.values())
    )
    if ok:
        return None
    return error_response(
        request,
        400,
        "Invalid 'metadata': at most 16 string pairs, keys up to 64 and values up to 512 characters.",
        param="metadata",
        code="invalid_value",
    )


def _enqueued_tokens(model: str | None, state: EmulatorState) -> int:
    """Prompt tokens of the model's unfinished batches (a batch failing validation holds none)."""
    now = state.now()
    enqueued = 0
    for bid in state.order["openai"]:
        other = state.batches[bid]
        other.timeline.refresh(now)
        if other.model == model and not other.timeline.terminal and not other.timeline.fail_validation:
            enqueued += int(other.extra.get("enqueued_tokens", 0))
    return enqueued


def _admit_to_queue(batch: Batch, state: EmulatorState) -> None:
    """OpenAI's enqueued-token limit: a batch whose tokens do not fit beside the model's unfinished
    batches fails with `token_limit_exceeded`; one that fits raises the high-water mark."""
    tokens = batch.estimated_input_tokens()
    batch.extra["enqueued_tokens"] = tokens
    limit = state.config.openai_enqueued_token_limit
    if limit is None:
        return
    model = batch.model or ""
    enqueued = _enqueued_tokens(batch.model, state) + tokens
    if enqueued > limit:
        batch.fail_token_limit(limit)
        state.stats.token_limit_refusals[model] += 1
    elif enqueued > state.stats.enqueued_tokens_high_water[model]:
        state.stats.enqueued_tokens_high_water[model] = enqueued


async def create_batch(request: web.Request) -> web.Response:
    state = state_of(request)
    body = await read_json(request)
    if not isinstance(body, dict):
        return error_response(request, 400, "We could not parse the JSON body of your request.")
    for param in ("input_file_id", "endpoint", "completion_window"):
        if not body.get(param):
            return missing_parameter(request, param)
    if body["completion_window"] != "24h":
        return error_response(
            request,
            400,
            "Invalid value for 'completion_window': expected '24h'.",
            param="completion_window",
            code="invalid_value",
        )
    if body["endpoint"] not in ENDPOINTS:
        return error_response(
            request,
            400,
            f"Invalid value for 'endpoint': '{body['endpoint']}'.",
            param="endpoint",
            code="invalid_value",
        )
    if (bad := _metadata_error(request, body.get("metadata"))) is not None:
        return bad
    f = state.openai_files.get(str(body["input_file_id"]))
    if f is None or f.data is None:
        return error_response(
            request, 404, f"No such File object: {body['input_file_id']}", param="input_file_id"
        )
    if f.purpose != "batch":
        return error_response(
            request,
            400,
            f"File {f.id} has purpose '{f.purpose}'; batches need purpose 'batch'.",
            param="input_file_id",
        )
    metadata: dict[str, str] | None = body.get("metadata")
    created = state.now()
    batch = Batch(
        id=new_id("openai_batch"),
        provider="openai",
        endpoint=body["endpoint"],
        model=None,
        created_at=created,
        items=[],
        timeline=state.new_timeline(0, created),
        metadata=metadata,
        extra={"input_file_id": f.id},
    )
    parse_input(batch, f.data, state)
    batch.timeline.n = batch.n
    specs = state.faults.take_batch_faults("openai")
    specs += batch_markers(*(metadata or {}).values())
    for s in specs:
        state.stats.faults_fired[s.fault] += 1
    batch.apply_faults(specs)
    if not batch.errors:
        _admit_to_queue(batch, state)
    state.add_batch(batch, list((metadata or {}).values()))
    if create_response_lost(request):
        return drop_connection(request)
    return json_ok(batch_json(batch, state))


def _no_batch(request: web.Request, batch_id: str) -> web.Response:
    return error_response(request, 404, f"No batch found with id '{batch_id}'.")


@batch_route(_no_batch, provider="openai")
async def retrieve_batch(request: web.Request, batch: Batch) -> web.Response:
    state_of(request).stats.status_reads[batch.id] += 1
    return json_ok(batch_json(batch, state_of(request)))


@batch_route(_no_batch, provider="openai")
async def cancel_batch(request: web.Request, batch: Batch) -> web.Response:
    state = state_of(request)
    if not batch.timeline.cancel(state.now()):
        return error_response(
            request, 409, f"Cannot cancel a batch with status '{batch.timeline.phase.value}'."
        )
    return json_ok(batch_json(batch, state))


async def list_batches(request: web.Request) -> web.Response:
    state = state_of(request)
    limit = int_query(request, "limit", 20)
    if limit is None or not 1 <= limit <= 100:
        return error_response(
            request, 400, "Invalid 'limit': must be between 1 and 100.", param="limit", code="invalid_value"
        )
    page, has_more = page_after(state.listing("openai"), request.query.get("after"), limit)
    return json_ok(
        {
            "object": "list",
            "data": [batch_json(state.batches[i], state) for i in page],
            "first_id": page[0] if page else None,
            "last_id": page[-1] if page else None,
            "has_more": has_more,
        }
    )


async def no_such_route(request: web.Request) -> web.Response:
    return error_response(request, 404, f"Invalid URL ({request.method} {request.path})")


def register(app: web.Application) -> None:
    """OpenAI routes that no other provider shares (see app.DUAL_ROUTES for the others)."""
    r = app.router
    fid, bid = "{file_id:[^/:]+}", "{batch_id:[^/:]+}"
    r.add_post("/v1/files", openai_files.create_file, name="openai:files.create")
    r.add_get("/v1/files", openai_files.list_files, name="openai:files.list")
    r.add_get(f"/v1/files/{fid}/content", openai_files.file_content, name="openai:files.content")
    r.add_post("/v1/batches", create_batch, name="openai:batches.create")
    r.add_post(f"/v1/batches/{bid}/cancel", cancel_batch, name="openai:batches.cancel")

"""The admin API under `/_emulator/`: faults, stats, clock and batch control. No key needed."""

from __future__ import annotations

from dataclasses import asdict, fields
from typing import Any

from aiohttp import web
from pydantic import ValidationError

from durabatch.emulator.batches import Batch
from durabatch.emulator.config import EmulatorConfig
from durabatch.emulator.faults import Fault, FaultSpec
from durabatch.emulator.route_helpers import batch_route, state_of
from durabatch.emulator.state import EmulatorState
from durabatch.emulator.timeline import Phase
from durabatch.emulator.wire import json_ok, read_json

__all__ = ["TARGETS", "register"]

#: names accepted by `advance {"to": ...}`, in any provider's vocabulary
TARGETS: dict[str, Phase] = {
    "validating": Phase.VALIDATING,
    "pending": Phase.VALIDATING,
    "in_progress": Phase.RUNNING,
    "running": Phase.RUNNING,
    "finalizing": Phase.FINALIZING,
    "cancelling": Phase.CANCELLING,
    "canceling": Phase.CANCELLING,
    "completed": Phase.COMPLETED,
    "ended": Phase.COMPLETED,
    "succeeded": Phase.COMPLETED,
    "failed": Phase.FAILED,
    "expired": Phase.EXPIRED,
    "cancelled": Phase.CANCELLED,
    "canceled": Phase.CANCELLED,
}


def _problem(status: int, message: str) -> web.Response:
    return json_ok({"error": message}, status=status)


def _fault_json(f: Fault) -> dict[str, Any]:
    return {"id": f.id, "remaining": f.remaining, "fired": f.fired, **f.spec.model_dump()}


async def add_fault(request: web.Request) -> web.Response:
    body = await read_json(request)
    try:
        spec = FaultSpec.model_validate(body)
    except ValidationError as exc:
        return _problem(400, str(exc))
    return json_ok(_fault_json(state_of(request).faults.add(spec)), status=201)


async def list_faults(request: web.Request) -> web.Response:
    return json_ok({"faults": [_fault_json(f) for f in state_of(request).faults.all()]})


async def clear_faults(request: web.Request) -> web.Response:
    state_of(request).faults.clear()
    return json_ok({"deleted": True})


async def delete_fault(request: web.Request) -> web.Response:
    if not state_of(request).faults.remove(request.match_info["fault_id"]):
        return _problem(404, "no such fault")
    return json_ok({"deleted": True})


async def stats(request: web.Request) -> web.Response:
    return json_ok(state_of(request).stats.as_json())


async def realtime_calls(request: web.Request) -> web.Response:
    """The real-time calls that reached the rate limit, oldest first (`Stats.realtime_calls`)."""
    return json_ok({"calls": [asdict(c) for c in state_of(request).stats.realtime_calls]})


async def reset(request: web.Request) -> web.Response:
    state_of(request).reset()
    return json_ok({"reset": True})


async def advance_clock(request: web.Request) -> web.Response:
    body = await read_json(request)
    seconds = body.get("seconds") if isinstance(body, dict) else None
    if not isinstance(seconds, int | float) or seconds < 0:
        return _problem(400, 'body must be {"seconds": <non-negative number>}')
    state = state_of(request)
    state.clock.advance(float(seconds))
    return json_ok({"offset_seconds": state.clock.offset})


def _no_batch(request: web.Request, batch_id: str) -> web.Response:
    return _problem(404, "no such batch")


#: admin routes address any provider's batch, deleted ones too
_batch_route = batch_route(_no_batch)


def batch_view(b: Batch, state: EmulatorState) -> dict[str, Any]:
    phase, k = b.progress(state.now())
    tl = b.timeline
    return {
        "id": b.id,
        "provider": b.provider,
        "phase": phase.value,
        "requests": b.n,
        "processed": k,
        "failed": b.failed_among(k),
        "held": tl.held_since is not None,
        "expires_at": tl.expires_at,
        "stuck_finalizing": tl.stuck_finalizing,
        "status_reads": state.stats.status_reads[b.id],
    }


@_batch_route
async def get_batch(request: web.Request, b: Batch) -> web.Response:
    return json_ok(batch_view(b, state_of(request)))


@_batch_route
async def hold(request: web.Request, b: Batch) -> web.Response:
    state = state_of(request)
    b.timeline.hold(state.now())
    return json_ok(batch_view(b, state))


@_batch_route
async def release(request: web.Request, b: Batch) -> web.Response:
    state = state_of(request)
    b.timeline.release(state.now())
    return json_ok(batch_view(b, state))


@_batch_route
async def advance(request: web.Request, b: Batch) -> web.Response:
    state = state_of(request)
    body = await read_json(request)
    if not isinstance(body, dict) or ("to" not in body and "seconds" not in body):
        return _problem(400, 'body must be {"to": <state>} or {"seconds": <number>}')
    if "seconds" in body:
        b.timeline.skip(float(body["seconds"]), state.now())
    if "to" in body:
        target = TARGETS.get(str(body["to"]).lower().removeprefix("batch_state_").removeprefix("job_state_"))
        if target is None:
            return _problem(400, f"unknown state {body['to']!r}; one of {sorted(TARGETS)}")
        if target == Phase.FAILED and not b.errors:
            b.errors.append(
                {
                    "code": "batch_failed",
                    "message": "Failed by the emulator admin API.",
                    "param": None,
                    "line": None,
                }
            )
        b.timeline.force(target, state.now())
    return json_ok(batch_view(b, state))


#: the state dir is fixed at start: the state was loaded from it
_TUNABLE = {f.name for f in fields(EmulatorConfig)} - {"api_keys", "state_dir"}


async def patch_config(request: web.Request) -> web.Response:
    """Change config fields at run time (timings, limits, padding); later batches see them."""
    body = await read_json(request)
    cfg = state_of(request).config
    if not isinstance(body, dict) or not set(body) <= _TUNABLE:
        return _problem(400, f"body must be an object with keys among {sorted(_TUNABLE)}")
    for key, value in body.items():
        if value is not None and not isinstance(value, int | float):
            return _problem(400, f"{key} must be a number or null")
        setattr(cfg, key, value)
    shown = asdict(cfg)
    shown["state_dir"] = None if cfg.state_dir is None else str(cfg.state_dir)
    return json_ok(shown)


async def health(request: web.Request) -> web.Response:
    return json_ok({"ok": True})


def register(app: web.Application) -> None:
    r = app.router
    r.add_get("/_emulator/health", health, name="admin.health")
    r.add_post("/_emulator/faults", add_fault, name="admin.faults.add")
    r.add_get("/_emulator/faults", list_faults, name="admin.faults.list")
    r.add_delete("/_emulator/faults", clear_faults, name="admin.faults.clear")
    r.add_delete("/_emulator/faults/{fault_id}", delete_fault, name="admin.faults.delete")
    r.add_get("/_emulator/stats", stats, name="admin.stats")
    r.add_get("/_emulator/realtime/calls", realtime_calls, name="admin.realtime.calls")
    r.add_patch("/_emulator/config", patch_config, name="admin.config")
    r.add_post("/_emulator/reset", reset, name="admin.reset")
    r.add_post("/_emulator/clock/advance", advance_clock, name="admin.clock")
    r.add_post("/_emulator/batches/{batch_id:.+}/hold", hold, name="admin.hold")
    r.add_post("/_emulator/batches/{batch_id:.+}/release", release, name="admin.release")
    r.add_post("/_emulator/batches/{batch_id:.+}/advance", advance, name="admin.advance")
    r.add_get("/_emulator/batches/{batch_id:.+}", get_batch, name="admin.batch")

"""How workflow code calls an activity: by name, with a named preset from workflows/options.py."""

from __future__ import annotations

from typing import Any, TypeVar, overload

from temporalio import workflow
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from workflows import options

__all__ = ["SUMMARY_MAX_CHARS", "cause_message", "cause_type", "execute", "execute_local", "short_summary"]


T = TypeVar("T")


@overload
async def execute(
    name: str, arg: Any, preset: options.Preset, result_type: type[T], *, summary: str
) -> T: ...


@overload
async def execute(
    name: str, arg: Any, preset: options.Preset, result_type: None, *, summary: str
) -> None: ...


async def execute(
    name: str, arg: Any, preset: options.Preset, result_type: type[T] | None, *, summary: str
) -> T | None:
    """Run activity `name` with a preset; its result decoded as `result_type`, typed for mypy."""
    result: T | None = await workflow.execute_activity(
        name,
        arg,
        start_to_close_timeout=preset.start_to_close,
        schedule_to_close_timeout=preset.schedule_to_close,
        heartbeat_timeout=preset.heartbeat,
        retry_policy=preset.retry,
        result_type=result_type,
        summary=short_summary(summary),
    )
    return result


#: The server bounds user metadata; a summary naming a long user URL or name is cut well below it.
SUMMARY_MAX_CHARS = 200


def short_summary(text: str) -> str:
    return text if len(text) <= SUMMARY_MAX_CHARS else text[: SUMMARY_MAX_CHARS - 1] + "…"


async def execute_local(
    name: str, arg: Any, preset: options.Preset, result_type: type | None, *, summary: str
) -> Any:
    """A short activity run by the worker that runs the workflow task, recorded as one marker event:
    no activity task for the server to dispatch. For quick calls only (a poll), never for long ones."""
    return await workflow.execute_local_activity(
        name,
        arg,
        start_to_close_timeout=preset.start_to_close,
        retry_policy=preset.retry,
        result_type=result_type,
        summary=short_summary(summary),
    )


def cause_message(err: BaseException) -> str:
    """The message of the activity's own failure (not Temporal's "Activity task failed" wrapper)."""
    cause = err.__cause__ if isinstance(err, ActivityError) and err.__cause__ else err
    return str(getattr(cause, "message", None) or cause)


def cause_type(err: BaseException) -> str | None:
    """The `ApplicationError.type` the activity raised, if it raised one."""
    cause = err.__cause__ if isinstance(err, ActivityError) else err
    return getattr(cause, "type", None)

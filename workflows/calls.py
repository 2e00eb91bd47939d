"""How workflow code calls an activity: through its typed stub, with a named preset from
workflows/options.py."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from temporalio import workflow
from temporalio.common import Priority
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from durabatch.contract import BatchConfig
    from workflows import options

__all__ = ["SUMMARY_MAX_CHARS", "cause_message", "cause_type", "execute", "priority_of", "short_summary"]


ParamT = TypeVar("ParamT")
ResultT = TypeVar("ResultT")


async def execute(
    activity_stub: Callable[[ParamT], Awaitable[ResultT]],
    arg: ParamT,
    preset: options.Preset,
    *,
    summary: str,
    priority: Priority,
) -> ResultT:
    """Run an activity (a stub of durabatch.activity_api) with a preset and the batch's priority;
    its result is decoded as the stub's return type, which the type checker also sees."""
    return await workflow.execute_activity(
        activity_stub,
        arg,
        start_to_close_timeout=preset.start_to_close,
        schedule_to_close_timeout=preset.schedule_to_close,
        heartbeat_timeout=preset.heartbeat,
        retry_policy=preset.retry,
        summary=short_summary(summary),
        priority=priority,
    )


def priority_of(cfg: BatchConfig) -> Priority:
    """The batch's task priority and fairness key, given to every activity it schedules (a batch
    that sets neither gets Temporal's default, as before these settings existed)."""
    return Priority(priority_key=cfg.priority, fairness_key=cfg.tenant)


#: The server bounds user metadata; a summary naming a long user URL or name is cut well below it.
SUMMARY_MAX_CHARS = 200


def short_summary(text: str) -> str:
    return text if len(text) <= SUMMARY_MAX_CHARS else text[: SUMMARY_MAX_CHARS - 1] + "…"


def cause_message(err: BaseException) -> str:
    """The message of the activity's own failure (not Temporal's "Activity task failed" wrapper)."""
    cause = err.__cause__ if isinstance(err, ActivityError) and err.__cause__ else err
    return str(getattr(cause, "message", None) or cause)


def cause_type(err: BaseException) -> str | None:
    """The `ApplicationError.type` the activity raised, if it raised one."""
    cause = err.__cause__ if isinstance(err, ActivityError) else err
    return getattr(cause, "type", None)

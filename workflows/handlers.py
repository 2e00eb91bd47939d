"""Completion handler dispatch, called by BatchWorkflow once the outcome is recorded.

Each handler runs at most once after a success: a webhook's delivery is recorded by its activity;
a user's activity is guarded by `claim_handler` / `record_handler` in the store. Workflow code:
deterministic, no I/O but activities.
"""

from __future__ import annotations

from collections.abc import Callable

from temporalio import workflow
from temporalio.common import Priority
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from durabatch import activity_api as api
    from durabatch.activity_api import HandlerInput, HandlerResult
    from durabatch.contract import BatchConfig
    from durabatch.models import BatchSummary, HandlerState
    from workflows import options
    from workflows.calls import cause_message, execute, priority_of, short_summary

__all__ = ["initial_handler_states", "run_handlers"]


def initial_handler_states(cfg: BatchConfig) -> list[HandlerState]:
    return [
        HandlerState(
            index=i,
            type=h.type,
            target=h.url or h.name or "",
            max_attempts=options.handler_preset(h.max_attempts).retry.maximum_attempts,
        )
        for i, h in enumerate(cfg.handlers)
    ]


async def run_handlers(
    cfg: BatchConfig, states: list[HandlerState], summary: Callable[[], BatchSummary], *, only_failed: bool
) -> None:
    """Run the pending (or only the failed) handlers in order, recording each one's outcome."""
    wanted = ("failed",) if only_failed else ("pending", "failed")
    for state in states:
        if state.status not in wanted:
            continue
        spec = cfg.handlers[state.index]
        handler_input = HandlerInput(
            batch_id=cfg.batch_id,
            handler_index=state.index,
            handler=spec,
            idempotency_key=f"{workflow.info().workflow_id}:handler:{state.index}",
            summary=summary(),
        )
        state.attempts += 1
        try:
            if spec.type == "webhook":
                await execute(
                    api.deliver_webhook,
                    handler_input,
                    options.handler_preset(spec.max_attempts),
                    summary=f"POST webhook {state.target}",
                    priority=priority_of(cfg),
                )
            else:
                await _custom_handler(handler_input, spec.name or "", spec.task_queue, priority_of(cfg))
            state.status = "succeeded"
            state.error = None
        except ActivityError as err:
            state.status = "failed"
            state.error = cause_message(err)


async def _custom_handler(
    handler_input: HandlerInput, name: str, task_queue: str | None, priority: Priority
) -> None:
    """A user's activity, guarded by the store so it never runs again after a success."""
    claim: HandlerResult = await execute(
        api.claim_handler, handler_input, options.FINALIZE, summary="check handler record", priority=priority
    )
    if claim.status == "skipped":
        return
    await workflow.execute_activity(
        name,
        handler_input,
        task_queue=task_queue or workflow.info().task_queue,
        start_to_close_timeout=options.HANDLER.start_to_close,
        schedule_to_close_timeout=options.HANDLER.schedule_to_close,
        retry_policy=options.handler_preset(handler_input.handler.max_attempts).retry,
        summary=short_summary(f"handler {name}"),
        priority=priority,
    )
    await execute(
        api.record_handler,
        handler_input,
        options.FINALIZE,
        summary="record handler success",
        priority=priority,
    )

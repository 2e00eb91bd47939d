"""AccountSweepWorkflow: one status sweep per provider account, on a cadence (docs/webhooks.md,
"The account sweep").

Each sweep is one `sweep_account` activity: it lists the account's batches and signals
`provider_event` to the batches of ours whose provider status changed, so those poll at once.
The workflow itself only keeps the cadence and the counts; a worker restart loses nothing (the
timer and the counts are in history), and the history stays bounded: the workflow continues as
new every `continue_as_new_after` sweeps, carrying its counts.

One per provider, id `durabatch-sweep-<provider>` (`durabatch.models.sweep_workflow_id`), started by the worker
service when DURABATCH_SWEEP_SECONDS > 0 (the first worker starts it; the others find it running).
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import Priority
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from durabatch import activity_api as api
    from durabatch.activity_api import SweepInput
    from durabatch.models import SweepTotals, SweepWorkflowInput
    from workflows import options
    from workflows.calls import cause_message, execute

__all__ = ["MAX_SWEEP_SECONDS", "MIN_SWEEP_SECONDS", "AccountSweepWorkflow"]

#: the cadence is clamped to this range: a zero or negative one would sweep in a tight loop
MIN_SWEEP_SECONDS = 1.0
MAX_SWEEP_SECONDS = 86400.0


def _cadence(seconds: float) -> float:
    if seconds > MAX_SWEEP_SECONDS:
        return MAX_SWEEP_SECONDS
    # below the minimum, and NaN (which compares false both ways), become the minimum
    return seconds if seconds >= MIN_SWEEP_SECONDS else MIN_SWEEP_SECONDS


@workflow.defn(name="AccountSweepWorkflow")
class AccountSweepWorkflow:
    def __init__(self) -> None:
        self._totals = SweepTotals()
        self._seconds = MIN_SWEEP_SECONDS
        self._reconfigured = False

    @workflow.run
    async def run(self, inp: SweepWorkflowInput) -> None:
        self._totals = inp.totals
        self._seconds = _cadence(inp.sweep_seconds)
        sweep = SweepInput(provider=inp.provider, max_pages=max(1, inp.max_pages))
        for _ in range(max(1, inp.continue_as_new_after)):
            await self._sweep_once(sweep)
            # a new cadence (the `configure` signal, also one that came during the sweep) ends
            # the wait: the next sweep comes at once, and then on the new cadence
            try:
                await workflow.wait_condition(
                    lambda: self._reconfigured,
                    timeout=timedelta(seconds=self._seconds),
                    timeout_summary="next sweep",
                )
            except TimeoutError:
                pass
            self._reconfigured = False
        await workflow.wait_condition(workflow.all_handlers_finished)
        workflow.continue_as_new(
            inp.model_copy(update={"totals": self._totals, "sweep_seconds": self._seconds})
        )

    async def _sweep_once(self, sweep: SweepInput) -> None:
        totals = self._totals
        try:
            result = await execute(
                api.sweep_account,
                sweep,
                options.SWEEP,
                summary=f"sweep {sweep.provider}",
                priority=Priority.default,
            )
        except ActivityError as exc:
            # The next sweep is the retry; meanwhile every batch keeps its own safety poll.
            totals.sweeps += 1
            totals.failed_sweeps += 1
            totals.last_error = cause_message(exc)
            workflow.logger.warning("account sweep failed", extra={"provider": sweep.provider})
            return
        totals.sweeps += 1
        totals.listed += result.listed
        totals.changed += result.changed
        totals.signalled += result.signalled
        totals.last_listed, totals.last_changed = result.listed, result.changed
        totals.last_signalled = result.signalled
        totals.last_error = None

    @workflow.signal(name="configure")
    def configure(self, sweep_seconds: float) -> None:
        """A worker started with another DURABATCH_SWEEP_SECONDS sends it: the latest one wins."""
        seconds = _cadence(sweep_seconds)
        if seconds != self._seconds:
            self._seconds = seconds
            self._reconfigured = True

    @workflow.query(name="status")
    def status(self) -> SweepTotals:
        return self._totals

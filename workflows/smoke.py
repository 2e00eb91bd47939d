"""A tiny workflow that proves the stack end to end: it writes a row to the store and reads it back."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.smoke import SmokeActivities


@workflow.defn(name="SmokeWorkflow")
class SmokeWorkflow:
    @workflow.run
    async def run(self, note: str) -> str:
        return await workflow.execute_activity_method(
            SmokeActivities.write_and_read,
            note,
            start_to_close_timeout=timedelta(seconds=30),
        )

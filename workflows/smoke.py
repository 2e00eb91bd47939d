"""A tiny workflow that proves the stack end to end: it writes a row to the store and reads it back."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow


@workflow.defn(name="SmokeWorkflow")
class SmokeWorkflow:
    @workflow.run
    async def run(self, note: str) -> str:
        result: str = await workflow.execute_activity(
            "smoke_write_and_read",
            note,
            start_to_close_timeout=timedelta(seconds=30),
            result_type=str,
        )
        return result

"""`make demo`: the whole product on the embedded stack, end to end, in about a minute.

Brings up the local stack (Temporal dev server with its Web UI, embedded PostgreSQL, the provider
emulator, a worker), submits a real batch of 1,000 chat requests through the worker, shows its
progress and summary, checks that every request has exactly one result in PostgreSQL and that the
completion webhook was delivered once, prints the batch's Web UI link, and stops the stack.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import uuid
from pathlib import Path

from rich.console import Console

from durabatch.client import BatchClient
from durabatch.devstack import DevStack, DevStackConfig, PortInUse
from durabatch.models import BatchInput
from durabatch.results_format import result_body
from durabatch.telemetry.logs import configure_logging
from durabatch.webhook_receiver import WebhookReceiver

__all__ = ["main", "run_demo"]

REQUESTS = 1000
console = Console()


def write_requests(path: Path, n: int = REQUESTS) -> None:
    topics = ["durable execution", "batch APIs", "PostgreSQL COPY", "idempotency", "exactly-once handlers"]
    with path.open("w") as fh:
        for i in range(n):
            line = {
                "custom_id": f"req-{i:05d}",
                "method": "POST",
                "url": "/v1/chat/completions",
                "body": {
                    "model": "gpt-4o-mini",
                    "messages": [
                        {"role": "system", "content": "Answer in one sentence."},
                        {"role": "user", "content": f"Question {i}: explain {topics[i % len(topics)]}."},
                    ],
                },
            }
            fh.write(json.dumps(line) + "\n")


async def run_demo(data_dir: Path = Path(".durabatch")) -> int:
    from durabatch.cli.console import summary_table, wait_with_progress

    stack = DevStack(DevStackConfig(data_dir=data_dir, emulator_options={"ms_per_request": 5.0}))
    console.rule("[bold]durabatch demo")
    try:
        await stack.start()
    except PortInUse as exc:
        console.print(f"[red]{exc}[/]")
        return 2
    try:
        console.print(stack.describe(), highlight=False, soft_wrap=True)
        assert stack.settings is not None
        requests_file = stack.data_dir / "demo-requests.jsonl"
        write_requests(requests_file)
        client = await BatchClient.connect(stack.settings, database_url=stack.database_url)
        batch_id = f"demo-{uuid.uuid4().hex[:8]}"
        async with WebhookReceiver() as receiver:
            handle = await client.start(
                BatchInput(
                    batch_id=batch_id,
                    provider="openai",
                    endpoint="/v1/chat/completions",
                    requests_uri=str(requests_file),
                    poll_schedule_seconds=[1.0, 2.0],
                    handlers=[{"type": "webhook", "url": receiver.url}],
                    metadata={"source": "make demo"},
                )
            )
            console.print(
                f"\nstarted batch [bold]{batch_id}[/] with {REQUESTS} requests (OpenAI Batch API, emulated)"
            )
            console.print(f"Web UI: {stack.batch_ui_url(batch_id)}\n", highlight=False, soft_wrap=True)
            summary = await wait_with_progress(handle, console)
            console.print(summary_table(summary))
            deliveries = len(receiver.accepted)
        pool = await client.store()
        by_outcome = {
            r["outcome"]: r["n"]
            for r in await pool.fetch(
                "SELECT outcome, count(*) AS n FROM results WHERE batch_id = $1 GROUP BY outcome", batch_id
            )
        }
        one_each = await pool.fetchval(
            """SELECT count(*) FROM requests r WHERE r.batch_id = $1 AND
                      (SELECT count(*) FROM results x WHERE x.batch_id = r.batch_id AND x.custom_id = r.custom_id) = 1""",
            batch_id,
        )
        sample = await pool.fetchrow(
            "SELECT custom_id, body, line FROM results WHERE batch_id = $1 AND outcome = 'succeeded' LIMIT 1",
            batch_id,
        )
        await client.close()
        console.print(f"PostgreSQL results by outcome: {by_outcome}")
        console.print(f"requests with exactly one result row: {one_each}/{REQUESTS}")
        console.print(f"completion webhook deliveries: {deliveries}")
        if sample:
            reply = result_body("openai", dict(sample))["choices"][0]["message"]["content"]
            console.print(f"sample result {sample['custom_id']}: {reply!r}")
        console.print(
            "\nthe stack stops now; the batch stays in .durabatch. To look at it again, run "
            "`.venv/bin/durabatch dev` and then:"
        )
        console.print(f"  .venv/bin/durabatch results {batch_id} --format csv", highlight=False)
        console.print(f"  {stack.batch_ui_url(batch_id)}", highlight=False, soft_wrap=True)
        ok = summary.status == "completed" and one_each == REQUESTS and deliveries == 1
        console.rule("[green]demo passed" if ok else "[red]demo failed")
        return 0 if ok else 1
    finally:
        await stack.stop()


def main() -> None:
    configure_logging("WARNING")
    code = asyncio.run(run_demo())
    sys.stdout.flush()
    sys.stderr.flush()
    # Like the CLI: skip interpreter teardown, where the Temporal client's native threads can
    # crash a process that has already finished its work (temporalio/sdk-python#300).
    os._exit(code)


if __name__ == "__main__":
    main()

"""What the large-job crash tests share: finding a moment to SIGKILL the worker process at, and
reading what the emulator holds afterwards."""

from __future__ import annotations

import os
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

from temporalio.api.enums.v1 import PendingActivityState
from temporalio.client import Client, WorkflowHandle

from durabatch.emulator import EmulatorConfig
from durabatch.store.pool import Pool
from durabatch.webhook_receiver import WebhookReceiver
from tests.helpers import eventually
from tests.worker_process import ProcessStack, process_stack

#: the handler's signing secret, read by the worker process from its environment (not a
#: DURABATCH_ variable: the worker's environment is built from the settings, and those are dropped)
WEBHOOK_SECRET_ENV = "CRASH_TEST_WEBHOOK_SECRET"
WEBHOOK_SECRET = "whsec-crash-test-7d21"


#: the worker's sticky timeout (`DURABATCH_STICKY_TIMEOUT_SECONDS`, 10 s by default): how long a
#: killed worker's batches wait before another worker takes their next step
STICKY_SECONDS = 2.0


def new_id() -> str:
    return uuid.uuid4().hex[:10]


@contextmanager
def webhook_secret() -> Iterator[None]:
    saved = os.environ.get(WEBHOOK_SECRET_ENV)
    os.environ[WEBHOOK_SECRET_ENV] = WEBHOOK_SECRET
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop(WEBHOOK_SECRET_ENV, None)
        else:
            os.environ[WEBHOOK_SECRET_ENV] = saved


@asynccontextmanager
async def stack_with_receiver(
    client: Client, pool: Pool, database_url: str, config: EmulatorConfig, log_dir: Path
) -> AsyncIterator[tuple[ProcessStack, WebhookReceiver]]:
    """A stack whose worker process can be killed (sticky timeout STICKY_SECONDS), and a webhook
    receiver that checks the signatures of the handler deliveries it gets."""
    with webhook_secret():
        async with (
            process_stack(
                client, pool, database_url, config, log_dir=log_dir, sticky_timeout_seconds=STICKY_SECONDS
            ) as stack,
            WebhookReceiver(secret=WEBHOOK_SECRET) as receiver,
        ):
            yield stack, receiver


def webhook(url: str) -> dict[str, Any]:
    return {"type": "webhook", "url": url, "secret_env": WEBHOOK_SECRET_ENV}


async def activities_running(handles: list[WorkflowHandle[Any, Any]]) -> int:
    """Activity attempts a worker holds now across the batches (a retry waiting out its backoff is
    held by nobody): killing the worker while one runs strands it until its heartbeat timeout."""
    running = 0
    for handle in handles:
        pending = (await handle.describe()).raw_description.pending_activities
        running += sum(a.state == PendingActivityState.PENDING_ACTIVITY_STATE_STARTED for a in pending)
    return running


async def kill_when(
    stack: ProcessStack,
    handles: list[WorkflowHandle[Any, Any]],
    moment: Callable[[], Awaitable[bool]],
    *,
    what: str,
    timeout: float = 30.0,
) -> None:
    """SIGKILL the worker at `moment` once no activity attempt is running (the workflows wait on a
    timer or a retry's backoff, their state only in the server), then start another."""

    async def ready() -> bool:
        return await moment() and await activities_running(handles) == 0

    await eventually(ready, bool, timeout=timeout, interval=0.05, what=what)
    stack.workers.kill()
    await stack.workers.start()


async def phase_of(stack: ProcessStack, provider_batch_id: str) -> str:
    view = await stack.admin("GET", f"/batches/{provider_batch_id}")
    return str(view["phase"])


def emulator_batches_of(stack: ProcessStack, workflow_id: str) -> list[Any]:
    """The emulator's OpenAI batches whose shard tag names this workflow."""
    return [
        b
        for b in stack.emulator.state.batches.values()
        if b.provider == "openai"
        and any(str(v).startswith(f"durabatch:{workflow_id}:") for v in (b.metadata or {}).values())
    ]


def custom_ids_per_batch(batches: list[Any]) -> Counter[str]:
    """How many of these provider batches hold each custom_id."""
    return Counter(item.cid for b in batches for item in b.items)

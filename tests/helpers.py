"""Helpers every test folder shares. `eventually` is the one way tests wait for something that
happens in another process (a workflow, the emulator, a `durabatch` subprocess): poll, and on
timeout fail with the last value seen, so a red test says what state things were stuck in."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from temporalio.client import WorkflowHandle

from durabatch.models import StatusQuery

T = TypeVar("T")


class NeverHappened(AssertionError):
    """`done` never held within the timeout; the message carries the last value `fetch` returned."""


def _failure(what: str, timeout: float, tries: int, last: object) -> NeverHappened:
    return NeverHappened(f"{what} not met within {timeout:g}s ({tries} tries); last value: {last!r}")


async def eventually(
    fetch: Callable[[], Awaitable[T]],
    done: Callable[[T], object],
    timeout: float = 30.0,
    interval: float = 0.1,
    *,
    what: str = "condition",
) -> T:
    """Await `fetch()` every `interval` seconds until `done(value)` is true; return that value.
    `fetch` is always called at least once, and once more at the deadline, so a slow machine
    that reaches the state just in time still passes."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    tries = 0
    while True:
        value = await fetch()
        tries += 1
        if done(value):
            return value
        if loop.time() >= deadline:
            raise _failure(what, timeout, tries, value)
        await asyncio.sleep(min(interval, max(0.0, deadline - loop.time())))


def eventually_sync(
    fetch: Callable[[], T],
    done: Callable[[T], object],
    timeout: float = 30.0,
    interval: float = 0.5,
    *,
    what: str = "condition",
) -> T:
    """`eventually` for synchronous tests (the CLI tests run `durabatch` as a subprocess)."""
    deadline = time.monotonic() + timeout
    tries = 0
    while True:
        value = fetch()
        tries += 1
        if done(value):
            return value
        if time.monotonic() >= deadline:
            raise _failure(what, timeout, tries, value)
        time.sleep(min(interval, max(0.0, deadline - time.monotonic())))


def batch_status(handle: WorkflowHandle[Any, Any]) -> Callable[[], Awaitable[StatusQuery]]:
    """A `fetch` for `eventually`: the batch workflow's `status` query."""

    async def fetch() -> StatusQuery:
        return await handle.query("status", result_type=StatusQuery)

    return fetch


async def wait_status(
    handle: WorkflowHandle[Any, Any], done: Callable[[StatusQuery], object], timeout: float = 30.0
) -> StatusQuery:
    """Query the batch's status until `done(status)`; the commonest wait in the workflow tests."""
    return await eventually(batch_status(handle), done, timeout, interval=0.2, what="batch status")

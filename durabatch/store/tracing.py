"""A span around each store query: `store.<module>.<function>`, with `db.system` and the batch id.

Applied as a decorator to the store's coroutine functions, so every caller (activities, the CLI,
tests) gets the span without knowing about it; the async generators open one span per chunk fetch.
SQL parameters are never recorded, only the operation's name and the batch id when given.
The same boundary translates driver exceptions into the store's own (`errors.store_errors`), so
every query function raises StoreError types only.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any, ParamSpec, TypeVar

from durabatch.store.errors import store_errors
from durabatch.telemetry.traces import span

__all__ = ["query_span", "traced"]

P = ParamSpec("P")
R = TypeVar("R")


@contextmanager
def query_span(operation: str, batch_id: Any = None) -> Iterator[None]:
    """The span of one store operation; a driver exception leaves it as a StoreError."""
    with (
        span(
            f"store.{operation}",
            **{"db.system": "postgresql", "db.operation.name": operation},
            batch_id=batch_id if isinstance(batch_id, str) else None,
        ),
        store_errors(),
    ):
        yield


def traced(fn: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
    """Run the decorated store coroutine inside `query_span("<module>.<function>")`: one span,
    and StoreError types only."""
    operation = f"{fn.__module__.rsplit('.', 1)[-1]}.{fn.__name__}"

    @functools.wraps(fn)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        batch_id = kwargs.get("batch_id", args[1] if len(args) > 1 else None)
        with query_span(operation, batch_id):
            return await fn(*args, **kwargs)

    return wrapper

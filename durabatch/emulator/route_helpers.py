"""What every route module of the emulator needs, written once: the state, look-up-or-404,
list paging and the faults that routes (not the middleware) fire.

The error bodies stay with each provider's routes: only they know their provider's shape, so a
look-up takes the provider's "not found" answer as an argument.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

from aiohttp import web

from durabatch.emulator.batches import Batch
from durabatch.emulator.content import Provider
from durabatch.emulator.errors import error_response
from durabatch.emulator.files import StoredFile
from durabatch.emulator.state import STATE_KEY, EmulatorState
from durabatch.emulator.wire import OPERATION, PROVIDER

__all__ = [
    "batch_route",
    "create_response_lost",
    "gemini_error",
    "int_query",
    "items_after",
    "missing_parameter",
    "page_after",
    "state_of",
    "truncation",
]

T = TypeVar("T")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
#: a route handler that is given the batch its path names
BatchHandler = Callable[[web.Request, Batch], Awaitable[web.StreamResponse]]

#: a provider's "no such batch" answer, given the request and the id it asked for
Missing = Callable[[web.Request, str], web.Response]


def state_of(request: web.Request) -> EmulatorState:
    return request.app[STATE_KEY]


def batch_route(
    missing: Missing, *, provider: Provider | None = None, prefix: str = ""
) -> Callable[[BatchHandler], Handler]:
    """Decorate `handler(request, batch)` of a route with a `{batch_id}`: the handler runs with
    the batch `prefix + batch_id` (only `provider`'s, not deleted; any batch when None), and a
    request for a batch that does not exist gets `missing(request, prefix + batch_id)`."""

    def decorate(handler: BatchHandler) -> Handler:
        async def route(request: web.Request) -> web.StreamResponse:
            batch_id = prefix + request.match_info["batch_id"]
            current = state_of(request)
            if provider is None:
                batch = current.batches.get(batch_id)
            else:
                batch = current.get_batch(provider, batch_id)
            if batch is None:
                return missing(request, batch_id)
            return await handler(request, batch)

        route.__name__ = handler.__name__
        route.__doc__ = handler.__doc__
        return route

    return decorate


def int_query(request: web.Request, name: str, default: int) -> int | None:
    """The integer query parameter `name` (`default` when absent); None when it is not an integer."""
    try:
        return int(request.query.get(name, str(default)))
    except ValueError:
        return None


def items_after(items: Sequence[T], cursor: str, key: Callable[[T], str]) -> list[T]:
    """The items listed after the one whose key is `cursor`; none when no item has that key (a
    cursor of another listing, or of a deleted item)."""
    keys = [key(item) for item in items]
    return list(items[keys.index(cursor) + 1 :]) if cursor in keys else []


def page_after(ids: Sequence[str], cursor: str | None, limit: int) -> tuple[list[str], bool]:
    """One page of a newest-first listing: up to `limit` ids after `cursor` (from the start when
    None or empty), and whether more follow."""
    rest = items_after(ids, cursor, str) if cursor else list(ids)
    return rest[:limit], len(rest) > limit


def missing_parameter(request: web.Request, param: str) -> web.Response:
    """OpenAI's answer to a request without a required parameter."""
    return error_response(
        request,
        400,
        f"Missing required parameter: '{param}'.",
        param=param,
        code="missing_required_parameter",
    )


def gemini_error(
    request: web.Request, status: int, message: str, status_name: str | None = None
) -> web.Response:
    """Gemini's error answer, `status_name` its `error.status` (NOT_FOUND, INVALID_ARGUMENT, ...)."""
    return error_response(request, status, message, type_=status_name)


def truncation(request: web.Request, f: StoredFile) -> int | None:
    """Where a `truncate_download` fault armed for this download cuts the file (its `after_bytes`,
    else half), or None to send it whole."""
    current = state_of(request)
    fault = current.faults.take(frozenset({"truncate_download"}), request[PROVIDER], request[OPERATION])
    if fault is None:
        return None
    current.stats.faults_fired["truncate_download"] += 1
    return fault.spec.after_bytes if fault.spec.after_bytes is not None else f.size // 2


def create_response_lost(request: web.Request) -> bool:
    """Whether a `lose_create_response` fault takes this create: the batch exists, and the caller
    must not hear of it (the connection is dropped)."""
    current = state_of(request)
    fault = current.faults.take(frozenset({"lose_create_response"}), request[PROVIDER], "batches.create")
    if fault is None:
        return False
    current.stats.faults_fired["lose_create_response"] += 1
    return True

"""Small HTTP helpers shared by the route modules."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

__all__ = [
    "OPERATION",
    "PROVIDER",
    "REQUEST_ID",
    "base_url",
    "drop_connection",
    "json_ok",
    "read_json",
    "rfc3339",
]

#: set by the middleware on every provider route
PROVIDER = web.RequestKey("emulator_provider", str)
OPERATION = web.RequestKey("emulator_operation", str)
REQUEST_ID = web.RequestKey("emulator_request_id", str)


def drop_connection(request: web.Request) -> web.Response:
    """Close the socket without answering; the returned response is never written."""
    if request.transport is not None:
        request.transport.close()
    return web.Response(status=204)


def json_ok(body: Any, status: int = 200) -> web.Response:
    return web.Response(
        status=status, text=json.dumps(body, separators=(",", ":")), content_type="application/json"
    )


async def read_json(request: web.Request) -> Any:
    """The JSON body, or None when it is missing or not JSON."""
    try:
        raw = await request.read()
        return json.loads(raw) if raw else None
    except ValueError:
        return None


def rfc3339(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def base_url(request: web.Request) -> str:
    """The emulator's own origin as the client reached it (for absolute URLs in bodies)."""
    return f"{request.scheme}://{request.host}"

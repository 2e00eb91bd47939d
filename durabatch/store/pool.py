"""The asyncpg connection pool, with JSON codecs so jsonb columns read and write Python objects."""

from __future__ import annotations

import json
from typing import Any

import asyncpg

from durabatch.store.errors import StoreUnavailable

__all__ = ["Pool", "create_pool"]

Pool = asyncpg.Pool


async def _init_connection(conn: asyncpg.Connection) -> None:
    for typename in ("json", "jsonb"):
        await conn.set_type_codec(typename, encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


async def create_pool(dsn: str, *, min_size: int = 1, max_size: int = 10, **kwargs: Any) -> Pool:
    """Connect to PostgreSQL; an unreachable server raises StoreUnavailable naming the host, not the password."""
    try:
        pool = await asyncpg.create_pool(
            dsn, min_size=min_size, max_size=max_size, init=_init_connection, **kwargs
        )
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        raise StoreUnavailable(f"cannot connect to PostgreSQL ({_redact(dsn)}): {exc}") from exc
    assert pool is not None
    return pool


def _redact(dsn: str) -> str:
    """The DSN with any password replaced, fit for a log line or an error message."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(dsn)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return urlunsplit(parts._replace(netloc=netloc))
    return dsn

"""The asyncpg connection pool, with JSON codecs so jsonb columns read and write Python objects."""

from __future__ import annotations

import json
from typing import Any

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from durabatch.store.errors import StoreUnavailable

__all__ = ["Conn", "Executor", "Pool", "RawJSON", "create_pool"]

Pool = asyncpg.Pool


class RawJSON(bytes):
    """UTF-8 JSON text already encoded (and checked) once; the jsonb codec sends it as is."""

    __slots__ = ()


def _encode_jsonb(value: Any) -> bytes:
    # jsonb's binary wire format is a version byte (1) followed by the JSON text; binary is what
    # COPY needs, so bulk writes take Python objects directly.
    if isinstance(value, RawJSON):
        return b"\x01" + value
    return b"\x01" + json.dumps(value, separators=(",", ":")).encode()


def _decode_jsonb(data: bytes) -> Any:
    return json.loads(data[1:])


async def _init_connection(conn: asyncpg.Connection) -> None:
    await conn.set_type_codec("json", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")
    await conn.set_type_codec(
        "jsonb", encoder=_encode_jsonb, decoder=_decode_jsonb, schema="pg_catalog", format="binary"
    )


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


#: A single connection, plain or borrowed from a pool.
Conn = asyncpg.Connection | PoolConnectionProxy
#: Anything that can run a one-off query: a connection or the pool itself.
Executor = asyncpg.Connection | PoolConnectionProxy | asyncpg.Pool

"""The asyncpg connection pool, with JSON codecs so jsonb columns read and write Python objects.

Callers borrow connections through `connection(pool)` or `transaction(pool)` rather than
`pool.acquire()`: acquiring, beginning and committing then raise the store's errors
(durabatch.store.errors), like every query function does, so no caller needs the driver's types.
"""

from __future__ import annotations

import json
from types import TracebackType
from typing import Any

import asyncpg
import msgspec
from asyncpg.pool import PoolAcquireContext, PoolConnectionProxy
from asyncpg.transaction import Transaction

from durabatch.store.errors import StoreUnavailable, store_errors, translate

__all__ = ["Conn", "Executor", "Pool", "RawJSON", "connection", "create_pool", "transaction"]

Pool = asyncpg.Pool

_JSONB_DECODER = msgspec.json.Decoder()


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
    # msgspec builds the same objects as json.loads at a quarter of the cost (a submit decodes
    # every request body); a number beyond float range it refuses, and json.loads reads as inf
    try:
        return _JSONB_DECODER.decode(data[1:])
    except msgspec.MsgspecError:
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
    except Exception as exc:
        if translate(exc) is None:
            raise
        # whatever the driver's reason (refused, bad password, no such database), nothing is stored
        # until it is fixed: the caller reports "unavailable", naming the host, never the password
        raise StoreUnavailable(f"cannot connect to PostgreSQL ({_redact(dsn)}): {exc}") from exc
    assert pool is not None
    return pool


class _Borrowed:
    """`async with` a pooled connection (in a transaction if asked), with the driver's errors from
    acquiring, beginning, committing and releasing translated. Errors of the block itself pass
    untouched: the block may read files or call providers, whose errors are not the store's."""

    def __init__(self, pool: Pool, *, in_transaction: bool, readonly: bool = False) -> None:
        self._pool = pool
        self._in_transaction = in_transaction
        self._readonly = readonly
        self._acquired: PoolAcquireContext | None = None
        self._transaction: Transaction | None = None

    async def __aenter__(self) -> Conn:
        with store_errors():
            self._acquired = self._pool.acquire()
            conn: Conn = await self._acquired.__aenter__()
            if self._in_transaction:
                self._transaction = conn.transaction(readonly=self._readonly)
                try:
                    await self._transaction.start()
                except BaseException:
                    await self._acquired.__aexit__(None, None, None)
                    raise
            return conn

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        assert self._acquired is not None
        with store_errors():
            try:
                if self._transaction is not None:
                    await self._transaction.__aexit__(kind, exc, tb)
            finally:
                await self._acquired.__aexit__(kind, exc, tb)


def connection(pool: Pool) -> _Borrowed:
    """`async with connection(pool) as conn:` a connection borrowed from the pool."""
    return _Borrowed(pool, in_transaction=False)


def transaction(pool: Pool, *, readonly: bool = False) -> _Borrowed:
    """`async with transaction(pool) as conn:` a borrowed connection inside one transaction,
    committed when the block ends and rolled back when it raises."""
    return _Borrowed(pool, in_transaction=True, readonly=readonly)


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

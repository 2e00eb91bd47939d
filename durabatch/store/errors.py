"""The store's own errors: callers of durabatch.store never see the driver's exception types.

StoreError                  anything the database or the driver refused; `sqlstate` when PostgreSQL gave one
├── StoreUnavailable        transient, retrying later may succeed: the server cannot be reached or went
│                           away, a pooled connection went stale, too many connections, the server is
│                           shutting down, a serialization failure or a deadlock rolled the transaction back
├── StoreDataError          a value PostgreSQL (or the driver, before sending) cannot store: out of range,
│                           invalid text, a NUL byte. A retry would send the same value: never transient
├── StoreConflict           a constraint refused a write (unique key, foreign key, check)
└── MigrationError          a migration file failed to apply

`store_errors()` is the one place driver exceptions become these. The query modules get it
through `tracing.traced` / `tracing.query_span`; `pool.create_pool`, `pool.connection` and
`pool.transaction` wrap connecting, acquiring, beginning and committing in it. The original
exception stays attached as `__cause__` for the logs.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import asyncpg
import asyncpg.exceptions._base as asyncpg_base

__all__ = [
    "MigrationError",
    "StoreConflict",
    "StoreDataError",
    "StoreError",
    "StoreUnavailable",
    "store_errors",
    "translate",
]

#: What a query raises while PostgreSQL restarts, refuses connections for a moment, or rolls a
#: transaction back to let another one through: worth retrying.
_TRANSIENT: tuple[type[BaseException], ...] = (
    OSError,  # refused or reset sockets, and TimeoutError
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,  # a closed pool or connection
    asyncpg.CannotConnectNowError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
    asyncpg.TooManyConnectionsError,
    asyncpg.TransactionRollbackError,  # serialization failure, deadlock detected
    # a pooled connection left half-used by a server restart ("cannot switch to state ...")
    asyncpg.InternalClientError,
)
#: Bad values: PostgreSQL's data exceptions (class 22) and the driver's refusal of an argument
#: it cannot encode (asyncpg exports that class only from its `_base` module). Checked before
#: _TRANSIENT: the driver's kind is also an InterfaceError.
_DATA: tuple[type[BaseException], ...] = (asyncpg.DataError, asyncpg_base.DataError)
_DRIVER: tuple[type[BaseException], ...] = (
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
    OSError,
)


class StoreError(Exception):
    """Base class of every error raised by durabatch.store."""

    def __init__(self, message: str, *, sqlstate: str | None = None) -> None:
        super().__init__(message)
        #: PostgreSQL's SQLSTATE code, when the server raised the error
        self.sqlstate = sqlstate


class StoreUnavailable(StoreError):
    """PostgreSQL could not be reached or rolled the work back; retrying later may succeed."""


class StoreDataError(StoreError):
    """A value cannot be stored (out of range, invalid text, NUL); retrying cannot help."""


class StoreConflict(StoreError):
    """A unique key, foreign key or check constraint refused a write."""


class MigrationError(StoreError):
    """A numbered migration failed; the message names the file."""


def translate(exc: BaseException) -> StoreError | None:
    """The store error for a driver exception, or None for anything that is not the driver's."""
    if isinstance(exc, StoreError) or not isinstance(exc, _DRIVER):
        return None
    sqlstate = getattr(exc, "sqlstate", None)
    message = f"{type(exc).__name__}: {exc}"
    kind: type[StoreError]
    if isinstance(exc, _DATA):
        kind = StoreDataError
    elif isinstance(exc, _TRANSIENT):
        kind = StoreUnavailable
    elif isinstance(exc, asyncpg.IntegrityConstraintViolationError):
        kind = StoreConflict
    else:
        kind = StoreError
    return kind(message, sqlstate=sqlstate if isinstance(sqlstate, str) else None)


@contextmanager
def store_errors() -> Iterator[None]:
    """Re-raise a driver exception from the block as its StoreError; everything else passes.

    A plain (not async) context manager: it works around awaits, and inside async generators.
    """
    try:
        yield
    except Exception as exc:
        translated = translate(exc)
        if translated is None:
            raise
        raise translated from exc

"""Store errors: asyncpg failures are translated here, once, at the store's edge.

StoreError
├── StoreUnavailable      the database cannot be reached (retryable)
└── MigrationError        a migration file failed to apply
"""

from __future__ import annotations

import asyncpg

__all__ = ["TRANSIENT_ERRORS", "MigrationError", "StoreError", "StoreUnavailable"]

#: What a query raises while PostgreSQL restarts or a pooled connection went stale: worth retrying.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.CannotConnectNowError,
    asyncpg.AdminShutdownError,
    # a pooled connection left half-used by a server restart ("cannot switch to state ...")
    asyncpg.InternalClientError,
)


class StoreError(Exception):
    """Base class of every error raised by durabatch.store."""


class StoreUnavailable(StoreError):
    """PostgreSQL could not be reached; retrying later may succeed."""


class MigrationError(StoreError):
    """A numbered migration failed; the message names the file."""

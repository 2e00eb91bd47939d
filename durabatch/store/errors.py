"""Store errors: asyncpg failures are translated here, once, at the store's edge.

StoreError
├── StoreUnavailable      the database cannot be reached (retryable)
└── MigrationError        a migration file failed to apply
"""

from __future__ import annotations

__all__ = ["MigrationError", "StoreError", "StoreUnavailable"]


class StoreError(Exception):
    """Base class of every error raised by durabatch.store."""


class StoreUnavailable(StoreError):
    """PostgreSQL could not be reached; retrying later may succeed."""


class MigrationError(StoreError):
    """A numbered migration failed; the message names the file."""

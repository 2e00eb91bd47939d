"""PostgreSQL store: pool, migrations and queries. Knows nothing of providers' wire formats.

Everything here raises the store's own errors (`errors`), never the driver's: borrow connections
with `connection(pool)` / `transaction(pool)` and call the query modules.
"""

from durabatch.store.errors import (
    MigrationError,
    StoreConflict,
    StoreDataError,
    StoreError,
    StoreUnavailable,
)
from durabatch.store.migrate import migrate
from durabatch.store.pool import Pool, connection, create_pool, transaction

__all__ = [
    "MigrationError",
    "Pool",
    "StoreConflict",
    "StoreDataError",
    "StoreError",
    "StoreUnavailable",
    "connection",
    "create_pool",
    "migrate",
    "transaction",
]

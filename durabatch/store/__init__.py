"""PostgreSQL store: pool, migrations and queries. Knows nothing of providers' wire formats."""

from durabatch.store.errors import TRANSIENT_ERRORS, MigrationError, StoreError, StoreUnavailable
from durabatch.store.migrate import migrate
from durabatch.store.pool import Pool, create_pool

__all__ = [
    "TRANSIENT_ERRORS",
    "MigrationError",
    "Pool",
    "StoreError",
    "StoreUnavailable",
    "create_pool",
    "migrate",
]

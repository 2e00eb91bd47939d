"""Numbered, forward-only SQL migrations, applied in order under an advisory lock.

Several workers may start at once against the same database; the advisory lock serialises them so
each migration is applied exactly once, and `schema_migrations` records what has been applied.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from importlib import resources

import asyncpg

from durabatch.store.errors import MigrationError, store_errors
from durabatch.store.pool import Conn

__all__ = ["MIGRATION_LOCK_KEY", "Migration", "available_migrations", "migrate"]

logger = logging.getLogger(__name__)

#: Arbitrary but fixed: every durabatch process contends on the same advisory lock.
MIGRATION_LOCK_KEY = 0x64757261_62617463  # "durabatc"

_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str


def available_migrations() -> list[Migration]:
    folder = resources.files("durabatch.store") / "migrations"
    found = []
    for entry in folder.iterdir():
        match = _NAME.match(entry.name)
        if match:
            found.append(Migration(int(match.group(1)), entry.name, entry.read_text(encoding="utf-8")))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise MigrationError(f"two migration files share a number: {[m.name for m in found]}")
    return found


async def migrate(conn: Conn) -> list[str]:
    """Apply every pending migration; returns the names applied by this call (empty if none).
    A migration that fails raises MigrationError; losing the database raises StoreUnavailable."""
    with store_errors():
        return await _migrate(conn)


async def _migrate(conn: Conn) -> list[str]:
    applied_now: list[str] = []
    await conn.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK_KEY)
    try:
        await conn.execute(
            """CREATE TABLE IF NOT EXISTS schema_migrations (
                   version integer PRIMARY KEY,
                   name text NOT NULL,
                   applied_at timestamptz NOT NULL DEFAULT now())"""
        )
        done = {row["version"] for row in await conn.fetch("SELECT version FROM schema_migrations")}
        for migration in available_migrations():
            if migration.version in done:
                continue
            try:
                async with conn.transaction():
                    await conn.execute(migration.sql)
                    await conn.execute(
                        "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
                        migration.version,
                        migration.name,
                    )
            except asyncpg.PostgresError as exc:
                raise MigrationError(f"migration {migration.name} failed: {exc}") from exc
            logger.info("applied migration", extra={"action": "migrate", "migration": migration.name})
            applied_now.append(migration.name)
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK_KEY)
    return applied_now

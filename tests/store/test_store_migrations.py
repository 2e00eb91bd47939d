"""Migrations: applied once, in order, even when run twice or from two connections at once."""

from __future__ import annotations

import asyncio

import asyncpg

from durabatch.store.migrate import available_migrations, migrate
from tests.conftest import create_test_database


async def _schema(url: str) -> list[tuple[str, str, str, str]]:
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch(
            """SELECT table_name, column_name, data_type, is_nullable FROM information_schema.columns
                WHERE table_schema = 'public' AND table_name <> 'schema_migrations'
                ORDER BY table_name, column_name"""
        )
        return [tuple(r) for r in rows]
    finally:
        await conn.close()


async def test_migrate_twice_applies_once(postgres_server_url: str) -> None:
    url = await create_test_database(postgres_server_url, "mig_twice", None)
    conn = await asyncpg.connect(url)
    try:
        first = await migrate(conn)
        second = await migrate(conn)
        rows = await conn.fetch("SELECT version, name FROM schema_migrations ORDER BY version")
    finally:
        await conn.close()
    assert first == [m.name for m in available_migrations()]
    assert second == []
    assert [r["name"] for r in rows] == first


async def test_concurrent_migrations_apply_once(postgres_server_url: str) -> None:
    url = await create_test_database(postgres_server_url, "mig_conc", None)
    conns = [await asyncpg.connect(url) for _ in range(2)]
    try:
        applied = await asyncio.gather(*(migrate(c) for c in conns))
        count = await conns[0].fetchval("SELECT count(*) FROM schema_migrations")
    finally:
        for c in conns:
            await c.close()
    # exactly one connection applied each migration; the other found them done
    assert sorted(len(a) for a in applied) == [0, len(available_migrations())]
    assert count == len(available_migrations())


async def test_schema_sql_matches_migrations(postgres_server_url: str) -> None:
    from importlib import resources

    migrated = await create_test_database(postgres_server_url, "mig_path", None)
    conn = await asyncpg.connect(migrated)
    try:
        await migrate(conn)
    finally:
        await conn.close()
    direct = await create_test_database(postgres_server_url, "schema_sql", None)
    conn = await asyncpg.connect(direct)
    try:
        await conn.execute((resources.files("durabatch.store") / "schema.sql").read_text())
    finally:
        await conn.close()
    assert await _schema(migrated) == await _schema(direct)


async def _line_compression(url: str) -> str:
    conn = await asyncpg.connect(url)
    try:
        value: str = await conn.fetchval(
            "SELECT attcompression::text FROM pg_attribute WHERE attrelid = 'results'::regclass AND attname = 'line'"
        )
        return value
    finally:
        await conn.close()


async def _server_has_lz4(url: str) -> bool:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("CREATE TEMP TABLE lz4_probe (x text COMPRESSION lz4)")
        return True
    except asyncpg.FeatureNotSupportedError:
        return False
    finally:
        await conn.close()


async def test_result_lines_are_lz4_where_the_server_has_it(postgres_server_url: str) -> None:
    """0005 makes `results.line` lz4 on a server built with it and leaves the default (pglz) on
    one without, where the migration must still apply; schema.sql does the same."""
    migrated = await create_test_database(postgres_server_url, "mig_lz4", None)
    conn = await asyncpg.connect(migrated)
    try:
        applied = await migrate(conn)
    finally:
        await conn.close()
    assert "0005_results_line_lz4.sql" in applied
    direct = await create_test_database(postgres_server_url, "schema_lz4", None)
    conn = await asyncpg.connect(direct)
    try:
        from importlib import resources

        await conn.execute((resources.files("durabatch.store") / "schema.sql").read_text())
    finally:
        await conn.close()
    expected = "l" if await _server_has_lz4(migrated) else ""
    assert await _line_compression(migrated) == expected
    assert await _line_compression(direct) == expected

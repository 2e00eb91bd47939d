"""Fixtures for the emulator's own tests: one fast emulator per test, reset between tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from durabatch.emulator import EmulatorConfig, run_emulator
from durabatch.emulator.server import RunningEmulator

KEY = "test-key"


def fast_config(**overrides: object) -> EmulatorConfig:
    cfg = EmulatorConfig(
        api_keys=[KEY],
        validating_seconds=0.05,
        ms_per_request=1.0,
        finalizing_seconds=0.05,
        expire_after_seconds=86400.0,
    )
    for k, v in overrides.items():
        setattr(cfg, k, v)
    return cfg


@pytest.fixture
async def emu() -> AsyncIterator[RunningEmulator]:
    async with run_emulator(fast_config()) as e:
        yield e


@pytest.fixture
async def http(emu: RunningEmulator) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=emu.url, timeout=10) as c:
        yield c

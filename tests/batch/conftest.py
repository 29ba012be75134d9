"""Batch fixtures: a fast emulator (short jobs, an account limit of 16) and a service on it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from falkit.emulator import EmulatorConfig, run_emulator
from falkit.service import FalService
from tests.integration.helpers import emulator_settings


@pytest.fixture
def emu() -> Iterator[Any]:
    with run_emulator(EmulatorConfig(latency=0.05, concurrency=16)) as server:
        yield server


@pytest.fixture
async def service(emu: Any) -> AsyncIterator[FalService]:
    async with FalService(emulator_settings(emu.base_url)) as svc:
        yield svc

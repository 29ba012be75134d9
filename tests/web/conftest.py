"""Fixtures for the web service: an emulator, and the app over a service pointed at it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from falkit.emulator import EmulatorConfig, run_emulator
from tests.web.helpers import Served, served, settings_for

_WEB_VARS = (
    "FALKIT_PUBLIC_URL",
    "FALKIT_API_TOKEN",
    "FALKIT_JWKS_URL",
    "FALKIT_MAX_SPEND_USD",
)


@pytest.fixture(autouse=True)
def web_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in _WEB_VARS:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def emu() -> Iterator[Any]:
    config = EmulatorConfig(latency=0.2, concurrency=4, training_seconds=0.3)
    with run_emulator(config) as server:
        yield server


@pytest.fixture
async def web(emu: Any) -> AsyncIterator[Served]:
    async with served(settings_for(emu.base_url)) as app:
        yield app

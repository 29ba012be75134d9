"""Fixtures for the client tests: a fake Fal (httpx.MockTransport) and a client wired to it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from falkit.client import FalClient, http
from falkit.config import Settings
from tests.client.fakes import FAST, FakeFal, make_settings


class VirtualClock:
    """The HTTP layer's clock and its sleep between retries, made virtual: each wait is
    recorded, takes no time, and moves on the clock its deadline is measured with. Each look
    at the clock finds it a microsecond later (requests take some time)."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        self.now += 1e-6
        return self.now

    async def sleep(self, delay: float) -> None:
        self.sleeps.append(delay)
        self.now += delay
        await _real_sleep(0)


_real_sleep = asyncio.sleep


class _Module:
    """A module with some of its functions replaced."""

    def __init__(self, module: Any, **replaced: Any) -> None:
        self._module = module
        self.__dict__.update(replaced)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._module, name)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> VirtualClock:
    """Retries wait on a virtual clock (falkit.client.http's time and sleep)."""
    virtual = VirtualClock()
    import time

    monkeypatch.setattr(http, "time", _Module(time, monotonic=virtual.monotonic))
    monkeypatch.setattr(http, "asyncio", _Module(asyncio, sleep=virtual.sleep))
    return virtual


@pytest.fixture
def fal() -> FakeFal:
    return FakeFal()


@pytest.fixture
def settings() -> Settings:
    return make_settings()


@pytest.fixture
async def client(fal: FakeFal, settings: Settings) -> AsyncIterator[FalClient]:
    async with FalClient(settings, transport=fal.transport, retry=FAST) as c:
        yield c

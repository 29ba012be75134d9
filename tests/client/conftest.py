"""Fixtures for the client tests: a fake Fal (httpx.MockTransport) and a client wired to it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from falkit.client import FalClient
from falkit.config import Settings
from tests.client.fakes import FAST, FakeFal, make_settings


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

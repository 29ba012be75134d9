"""Fixtures of the engine's rule tests: a journal, and a maker of engines over a fake Fal."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from falkit.store import JobStore
from tests.engine.harness import Harness


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[JobStore]:
    async with await JobStore.open(f"sqlite+aiosqlite:///{tmp_path / 'lib.db'}") as opened:
        yield opened


@pytest.fixture
async def harness(store: JobStore) -> AsyncIterator[Harness]:
    made: list[Harness] = []

    def make(transport: httpx.AsyncBaseTransport, **options: Any) -> Harness:
        made.append(Harness(store, transport, **options))
        return made[-1]

    yield make  # type: ignore[misc]
    for one in made:
        await one.close()

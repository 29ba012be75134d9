"""The library on a real PostgreSQL server: a generation end to end, and resume from it."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from falkit.service import FalService
from tests.integration.helpers import emulator_settings
from tests.pg import Postgres, postgres

__all__ = ["postgres"]


@pytest.fixture
def pg_url(postgres: Postgres) -> Iterator[str]:
    name = postgres.create_database()
    yield postgres.url(name)
    postgres.drop_database(name)


async def test_generate_and_resume_on_postgresql(emu: Any, pg_url: str) -> None:
    settings = emulator_settings(emu.base_url, database_url=pg_url)
    async with FalService(settings) as service:
        result = await service.generate_image("a harbour at night", model="flux-dev", seed=11)
        store = await service.store()
        assert store.dialect == "postgresql"
        record = await service.get_job(result.job_id)
        image = record.images[0]
        data = Path(image.local_path).read_bytes()
        assert hashlib.sha256(data).hexdigest() == image.sha256
        assert record.seed == 11

        emu.engine.config.latency = 2.0
        with pytest.raises(Exception, match="still running"):
            await service.generate_image("a second harbour", timeout=0.3)
    emu.engine.config.latency = 0.1
    async with FalService(settings) as again:
        (resumed,) = await again.resume()
        assert resumed.status == "completed"
        assert [j.status for j in await again.list_jobs()] == ["completed", "completed"]
    assert emu.stats.submits == 2

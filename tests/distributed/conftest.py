"""A cluster in child processes for each test: PostgreSQL (tests/pg.py), moto's S3 server,
the emulator in its own process, workers and `falkit serve --no-worker` replicas.

PostgreSQL is required under CI and skipped with the reason elsewhere (tests/pg.py).
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.distributed.helpers import Cluster
from tests.pg import Postgres, postgres

__all__ = ["postgres"]

BENCH = Path(__file__).parents[2] / "bench"


@pytest.fixture(scope="module")
def harness() -> Any:
    sys.path.insert(0, str(BENCH))  # what `python bench/x.py` does
    import harness
    import harness.cluster

    return harness


@pytest.fixture(scope="module")
def cluster_db(postgres: Postgres) -> Iterator[str]:
    """A database of this module's own, migrated (PgQueuer's schema included)."""
    from falkit.store import JobStore

    name = postgres.create_database()
    url = postgres.url(name)

    async def migrate() -> None:
        store = await JobStore.open(url)
        await store.close()

    asyncio.run(migrate())
    yield url
    postgres.drop_database(name)


@pytest.fixture(scope="module")
def moto(harness: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    server = harness.cluster.MotoServer(tmp_path_factory.mktemp("moto") / "moto.log").start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def emulator(harness: Any) -> Iterator[Any]:
    env = {"PYTHONPATH": os.pathsep.join(sys.path)}
    with harness.EmulatorProcess(latency=4.0, concurrency=16, extra_env=env) as emu:
        yield emu


@pytest.fixture
def cluster(
    harness: Any, cluster_db: str, moto: Any, emulator: Any, tmp_path: Path
) -> Iterator[Cluster]:
    emulator.reset()
    cluster = Cluster(harness.cluster, cluster_db, moto, emulator, tmp_path)
    try:
        yield cluster
    finally:
        cluster.stop()

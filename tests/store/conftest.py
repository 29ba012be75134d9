"""Store fixtures: every test runs on SQLite and on a real PostgreSQL server.

PostgreSQL: one uniquely named database per test session (created through asyncpg on the
``test`` database, dropped at the end), emptied between tests; tests that need a database with
no schema at all get their own. Unreachable server: a failure under CI, else a skip that says so.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from falkit.store import JobStore
from tests.pg import Postgres, postgres
from tests.store.helpers import on_connection

__all__ = ["postgres"]

BACKENDS = ["sqlite", "postgresql"]
TABLES = ("images", "jobs", "loras", "uploads", "batches")


@pytest.fixture(scope="session")
def pg_database(postgres: Postgres) -> Iterator[str]:
    """A database of this test session's own; its URL."""
    name = postgres.create_database()
    yield postgres.url(name)
    postgres.drop_database(name)


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def db_url(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """A database for one test: a new SQLite file, or the session's PostgreSQL database."""
    if backend == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'lib' / 'falkit.db'}"
    return str(request.getfixturevalue("pg_database"))


@pytest.fixture
def empty_url(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[str]:
    """A database that has never seen falkit: no tables at all."""
    if backend == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'empty' / 'falkit.db'}"
        return
    postgres: Postgres = request.getfixturevalue("postgres")
    name = postgres.create_database()
    yield postgres.url(name)
    postgres.drop_database(name)


@pytest.fixture
async def store(db_url: str, backend: str) -> AsyncIterator[JobStore]:
    """An open, migrated, empty store."""
    store = await JobStore.open(db_url)
    if backend == "postgresql":
        from sqlalchemy import text

        truncate = text(f"TRUNCATE {', '.join(TABLES)}")
        await on_connection(store, lambda conn: conn.execute(truncate), write=True)
    yield store
    await store.close()

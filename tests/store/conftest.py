"""Store fixtures: every test runs on SQLite and on a real PostgreSQL server.

PostgreSQL: one uniquely named database per test session (created through asyncpg on the
``test`` database, dropped at the end), emptied between tests; tests that need a database with
no schema at all get their own. Unreachable server: a failure under CI, else a skip that says so.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from falkit.store import JobStore

PG_HOST, PG_PORT, PG_ADMIN_DB = "127.0.0.1", 5432, "test"
PG_USERS = ("postgres", "root")
UNREACHABLE = f"PostgreSQL not reachable at {PG_HOST}:{PG_PORT}; set CI=1 to require it"
BACKENDS = ["sqlite", "postgresql"]
TABLES = ("images", "jobs", "loras", "uploads", "batches")


class Postgres:
    """An admin connection recipe for the local server, and databases made through it."""

    def __init__(self, user: str) -> None:
        self.user = user

    def url(self, database: str) -> str:
        return f"postgresql+asyncpg://{self.user}@{PG_HOST}:{PG_PORT}/{database}"

    def run(self, sql: str) -> None:
        asyncio.run(_execute(self.user, sql))

    def create_database(self) -> str:
        name = f"falkit_test_{secrets.token_hex(6)}"
        self.run(f'CREATE DATABASE "{name}"')
        return name

    def drop_database(self, name: str) -> None:
        self.run(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def _execute(user: str, sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(
        host=PG_HOST, port=PG_PORT, user=user, database=PG_ADMIN_DB, timeout=5
    )
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def _find_user() -> str | None:
    for user in PG_USERS:
        try:
            asyncio.run(_execute(user, "SELECT 1"))
        except Exception:
            continue
        return user
    return None


@pytest.fixture(scope="session")
def postgres() -> Postgres:
    """The local PostgreSQL server (skip, or fail under CI, when it is not there)."""
    user = _find_user()
    if user is None:
        if os.environ.get("CI"):
            pytest.fail(UNREACHABLE)
        pytest.skip(UNREACHABLE)
    return Postgres(user)


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

        async with store.engine.begin() as conn:
            await conn.execute(text(f"TRUNCATE {', '.join(TABLES)}"))
    yield store
    await store.close()

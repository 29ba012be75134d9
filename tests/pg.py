"""The local PostgreSQL server for tests: found once, a failure under CI when it is missing."""

from __future__ import annotations

import asyncio
import os
import secrets

import pytest

PG_HOST, PG_PORT, PG_ADMIN_DB = "127.0.0.1", 5432, "test"
PG_USERS = ("postgres", "root")
UNREACHABLE = f"PostgreSQL not reachable at {PG_HOST}:{PG_PORT}; set CI=1 to require it"


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

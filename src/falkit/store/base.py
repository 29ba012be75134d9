"""What every part of the store shares: the engine, short transactions, and error translation.

Writes go one at a time per process on SQLite (an asyncio lock in front of SQLite's own write
lock), so 64 coroutines of a batch queue here instead of spinning on "database is locked".
PostgreSQL takes concurrent writers as they come.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any, Self, cast

from falkit.errors import FalkitError, NotFoundError, StoreError
from falkit.store.db import mask_url, writer

if TYPE_CHECKING:
    import asyncio

    from sqlalchemy.engine import CursorResult, Result
    from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker


class StoreBase:
    """An open library database; subclasses add the operations."""

    def __init__(self, engine: AsyncEngine, url: str) -> None:
        import asyncio

        from sqlalchemy.ext.asyncio import async_sessionmaker

        self._engine = engine
        self._url = mask_url(url)
        self._dialect = engine.dialect.name
        self._reads: async_sessionmaker[AsyncSession] = async_sessionmaker(
            engine, expire_on_commit=False
        )
        self._writes: async_sessionmaker[AsyncSession] = async_sessionmaker(
            writer(engine), expire_on_commit=False
        )
        sqlite = self._dialect == "sqlite"
        self._write_lock: asyncio.Lock | None = asyncio.Lock() if sqlite else None
        # One shared connection (an in-memory SQLite database) cannot interleave transactions.
        single = sqlite and engine.url.database in (None, "", ":memory:")
        self._read_lock = self._write_lock if single else None
        self._closed = False

    @property
    def url(self) -> str:
        """The database URL, password masked."""
        return self._url

    @property
    def dialect(self) -> str:
        """ "sqlite" or "postgresql"."""
        return self._dialect

    @property
    def engine(self) -> AsyncEngine:
        return self._engine

    async def close(self) -> None:
        """Release every connection; the store cannot be used afterwards."""
        if not self._closed:
            self._closed = True
            await self._engine.dispose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._url!r})"

    @contextlib.asynccontextmanager
    async def _read(self) -> AsyncIterator[AsyncSession]:
        """A short read-only transaction."""
        async with _maybe(self._read_lock), self._translate(), self._reads.begin() as session:
            yield session

    @contextlib.asynccontextmanager
    async def _write(self) -> AsyncIterator[AsyncSession]:
        """A short write transaction: committed on exit, rolled back on error."""
        async with _maybe(self._write_lock), self._translate(), self._writes.begin() as session:
            yield session

    @contextlib.asynccontextmanager
    async def _translate(self) -> AsyncIterator[None]:
        """Database failures as StoreError (our own errors pass through unchanged)."""
        from sqlalchemy.exc import SQLAlchemyError

        if self._closed:
            raise StoreError(f"the library store ({self._url}) is closed")
        try:
            yield
        except FalkitError:
            raise
        except (SQLAlchemyError, OSError) as exc:
            reason = mask_url(str(getattr(exc, "orig", None) or exc)).splitlines()[0]
            raise StoreError(f"library database error ({self._url}): {reason}") from exc

    def _insert(self, model: type[Any]) -> Any:
        """An INSERT for this backend, with its ON CONFLICT clauses available."""
        if self._dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as pg_insert

            return pg_insert(model)
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        return sqlite_insert(model)


def rowcount(result: Result[Any]) -> int:
    """How many rows an UPDATE, DELETE or INSERT … ON CONFLICT touched."""
    return int(cast("CursorResult[Any]", result).rowcount)


def no_job(job_id: str) -> NotFoundError:
    return NotFoundError(f"no job {job_id!r} in the library; see `falkit jobs list`")


@contextlib.asynccontextmanager
async def _maybe(lock: asyncio.Lock | None) -> AsyncIterator[None]:
    if lock is None:
        yield
    else:
        async with lock:
            yield

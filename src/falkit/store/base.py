"""What every part of the store shares: opening, the writer and readers, error translation.

Every write is a small sync function over a SQLAlchemy Core connection, queued to the store's
one writer (group commit: see writer.py); every read is one too, run where it need not wait for
the writer (see backends.py). Both answer awaitables, so the public methods stay async.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Concatenate, NoReturn, ParamSpec, Self, TypeVar

from falkit.errors import FalkitError, NotFoundError, StoreError, ValidationError
from falkit.store.db import mask_url

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

    from falkit.store.backends import Backend
    from falkit.store.stats import Counters, StoreStats

P = ParamSpec("P")
T = TypeVar("T")


class StoreBase:
    """An open library database; subclasses add the operations."""

    def __init__(self, backend: Backend, url: str, dialect: str, counters: Counters) -> None:
        self._backend = backend
        self._url = mask_url(url)
        self._dialect = dialect
        self._counters = counters
        self._closed = False

    @classmethod
    async def open(
        cls, url: str, *, pool_size: int | None = None, stall_timeout: float | None = None
    ) -> Self:
        """Open (creating the SQLite file and its folder), migrating only when behind.

        ``pool_size`` is how many connections the store holds: one for its writer, the rest
        for reads (default 3 on SQLite, 5 on PostgreSQL; at least 2). ``stall_timeout``
        (PostgreSQL): seconds a session may sit idle inside a transaction (db.STALL_TIMEOUT).
        """
        from falkit.store.backends import (
            POSTGRES_POOL_SIZE,
            SQLITE_POOL_SIZE,
            PostgresBackend,
            SqliteBackend,
        )
        from falkit.store.db import STALL_TIMEOUT, parse_url
        from falkit.store.stats import Counters

        if pool_size is not None and pool_size < 2:
            raise ValidationError.field("pool_size", f"{pool_size}", "2 or more")
        parsed = parse_url(url)
        counters = Counters()
        dialect = parsed.get_backend_name()
        try:
            backend: Backend
            if dialect == "sqlite":
                size = pool_size or SQLITE_POOL_SIZE
                backend = await SqliteBackend.open(parsed, size, counters)
            else:
                size = pool_size or POSTGRES_POOL_SIZE
                stall = stall_timeout or STALL_TIMEOUT
                backend = await PostgresBackend.open(parsed, size, counters, stall)
        except StoreError:
            raise
        except Exception as exc:
            reason = mask_url(str(exc) or type(exc).__name__).splitlines()[0]
            raise StoreError(
                f"cannot open database at {mask_url(url)}: {reason}; check FALKIT_DATABASE_URL"
            ) from exc
        return cls(backend, url, dialect, counters)

    @property
    def url(self) -> str:
        """The database URL, password masked."""
        return self._url

    @property
    def dialect(self) -> str:
        """ "sqlite" or "postgresql"."""
        return self._dialect

    @property
    def stats(self) -> StoreStats:
        """Statements sent and transactions committed so far (subtract two snapshots)."""
        return self._counters.snapshot()

    async def close(self) -> None:
        """Apply queued writes, then release every connection; the store is unusable after."""
        if not self._closed:
            self._closed = True
            await self._backend.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._url!r})"

    async def _write(
        self, fn: Callable[Concatenate[Connection, P], T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """Queue a write operation and wait for its outcome (its batch has committed)."""
        self._check_open()
        call = functools.partial(fn, **kwargs) if kwargs else fn
        try:
            return await self._backend.submit(call, args)  # type: ignore[no-any-return]
        except Exception as exc:
            self._raise(exc)

    async def _write_all(
        self, calls: list[tuple[Callable[..., Any], tuple[Any, ...], int]]
    ) -> list[Any]:
        """Queue several weighted operations at once (in this order), then wait for them all.

        Each one is applied whatever happens to the others; the first failure is raised.
        """
        self._check_open()
        futures = [self._backend.submit(fn, args, weight) for fn, args, weight in calls]
        outcomes = await asyncio.gather(*futures, return_exceptions=True)
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                self._raise(outcome)
        return outcomes

    async def _read(
        self, fn: Callable[Concatenate[Connection, P], T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """Run a read function on a reader's connection, in one transaction."""
        self._check_open()
        call = functools.partial(fn, **kwargs) if kwargs else fn
        try:
            return await self._backend.read(call, args)  # type: ignore[no-any-return]
        except Exception as exc:
            self._raise(exc)

    def _check_open(self) -> None:
        if self._closed:
            raise StoreError(f"the library store ({self._url}) is closed")

    def _raise(self, exc: BaseException) -> NoReturn:
        """Database failures as StoreError (our own errors and others pass through)."""
        from sqlalchemy.exc import SQLAlchemyError

        if isinstance(exc, FalkitError) or not isinstance(exc, SQLAlchemyError | OSError):
            raise exc
        reason = mask_url(str(getattr(exc, "orig", None) or exc)).splitlines()[0]
        raise StoreError(f"library database error ({self._url}): {reason}") from exc


def no_job(job_id: str) -> NotFoundError:
    return NotFoundError(f"no job {job_id!r} in the library; see `falkit jobs list`")

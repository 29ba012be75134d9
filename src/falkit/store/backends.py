"""Where a store's operations run: one writer, and readers that never wait behind it.

SQLite: a dedicated writer thread owns one connection and drains a thread-safe queue of
operations (group commit, see writer.py); reads run on a small pool of reader threads with
their own connections, which WAL lets read while the writer writes. An in-memory database has
a single connection, so its reads queue with the writes.

PostgreSQL: one writer task drains the same kind of queue through ``AsyncConnection.run_sync``
(the same sync operation functions), on a connection it keeps; reads take other connections
of the pool. ``pool_size`` counts them all (writer included), so the store's footprint on the
server is exactly the pool.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import queue
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from falkit.store import db, schema
from falkit.store.writer import MAX_BATCH, Op, fits, new_op, resolve, run_batch, settle

if TYPE_CHECKING:
    from sqlalchemy.engine import URL, Connection, Engine
    from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

    from falkit.store.stats import Counters

SQLITE_POOL_SIZE = 3  # the writer and two readers: SQLite reads are short and local
# The writer and four readers: reads wait on the network, so a few may overlap, while the
# engine's writes all go through the one writer. More would only use up the server's
# max_connections when many falkit processes share one database.
POSTGRES_POOL_SIZE = 5


class Backend(Protocol):
    """What the store needs from a database: queue a write, run a read, close."""

    def submit(
        self, fn: Callable[..., Any], args: tuple[Any, ...], weight: int = 1
    ) -> asyncio.Future[Any]: ...

    async def read(self, fn: Callable[..., Any], args: tuple[Any, ...]) -> Any: ...

    async def close(self) -> None: ...


class SqliteBackend:
    """A writer thread with its own connection, and reader threads."""

    def __init__(self, engine: Engine, readers: int, counters: Counters) -> None:
        self._engine = engine
        self._counters = counters
        self._queue: queue.SimpleQueue[Op | None] = queue.SimpleQueue()
        self._ready: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._stopped: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._carry: Op | None = None  # taken from the queue, did not fit the last batch
        self._readers = None
        if not db.is_memory(engine.url):
            self._readers = concurrent.futures.ThreadPoolExecutor(readers, "falkit-store-read")
        self._thread = threading.Thread(target=self._run, name="falkit-store-write", daemon=True)

    @classmethod
    async def open(cls, url: URL, pool_size: int, counters: Counters) -> SqliteBackend:
        """Start the writer, which brings the file to WAL and the newest schema first."""
        engine = db.sqlite_engine(url, pool_size)
        counters.listen(engine)
        backend = cls(engine, pool_size - 1, counters)
        backend._thread.start()
        try:
            await asyncio.wrap_future(backend._ready)
        except BaseException:
            await backend.close()
            raise
        return backend

    def submit(
        self, fn: Callable[..., Any], args: tuple[Any, ...], weight: int = 1
    ) -> asyncio.Future[Any]:
        op = new_op(fn, args, weight)
        self._queue.put(op)
        return op.future

    async def read(self, fn: Callable[..., Any], args: tuple[Any, ...]) -> Any:
        if self._readers is None:
            return await self.submit(fn, args)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._readers, _read_sync, self._engine, fn, args)

    async def close(self) -> None:
        """Apply what is queued, stop the writer, release every connection."""
        if self._thread.is_alive():
            self._queue.put(None)
            await asyncio.wrap_future(self._stopped)
        if self._readers is not None:
            self._readers.shutdown(wait=False, cancel_futures=True)
        self._engine.dispose()

    def _run(self) -> None:
        conn = None
        try:
            conn = self._prepare()
        except BaseException as exc:
            self._ready.set_exception(exc)
            self._stopped.set_result(None)
            return
        self._ready.set_result(None)
        try:
            while (batch := self._next_batch()) is not None:
                conn = self._apply(conn, batch)
        finally:
            if conn is not None:
                conn.close()
            self._stopped.set_result(None)

    def _prepare(self) -> Connection:
        """WAL, then the schema check (and migration when needed) on the writer's connection."""
        db.ensure_wal(self._engine)
        with self._engine.connect() as reader:  # a plain read: no write lock for the check
            current = schema.is_current(reader)
        conn = self._connect()
        if not current:
            try:
                schema.migrate(conn)
            except BaseException:
                conn.close()
                raise
        return conn

    def _connect(self) -> Connection:
        return self._engine.connect().execution_options(**{db.WRITE_OPTION: True})

    def _next_batch(self) -> list[Op] | None:
        """Block for one op, then take what else is queued and fits (None once asked to stop)."""
        first, self._carry = self._carry or self._queue.get(), None
        if first is None:
            return None
        batch, weight = [first], first.weight
        while weight < MAX_BATCH:
            try:
                op = self._queue.get_nowait()
            except queue.Empty:
                break
            if op is None:
                self._queue.put(None)  # stop after this batch
                break
            if not fits(weight, op):
                self._carry = op  # first of the next batch
                break
            batch.append(op)
            weight += op.weight
        return batch

    def _apply(self, conn: Connection | None, batch: list[Op]) -> Connection | None:
        try:
            conn = conn or self._connect()
        except Exception as exc:
            settle(batch, [(False, exc)] * len(batch))
            return None
        settle(batch, run_batch(conn, batch, self._counters))
        if conn.invalidated:
            conn.close()
            return None
        return conn


def _read_sync(engine: Engine, fn: Callable[..., Any], args: tuple[Any, ...]) -> Any:
    """One read in one (deferred, snapshot) transaction, on a reader thread."""
    with engine.connect() as conn:
        return fn(conn, *args)


class PostgresBackend:
    """A writer task with a connection it keeps, and the rest of the pool for reads."""

    def __init__(self, engine: AsyncEngine, counters: Counters) -> None:
        self._engine = engine
        self._counters = counters
        self._pending: collections.deque[Op] = collections.deque()
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._conn: AsyncConnection | None = None
        self._closing = False

    @classmethod
    async def open(
        cls, url: URL, pool_size: int, counters: Counters, stall_timeout: float
    ) -> PostgresBackend:
        """Check the schema version (migrating only when it is behind)."""
        engine = db.postgres_engine(url, pool_size, stall_timeout)
        counters.listen(engine.sync_engine)
        try:
            async with engine.connect() as conn:
                if not await conn.run_sync(schema.is_current):
                    await conn.run_sync(schema.migrate)
        except BaseException:
            await engine.dispose()
            raise
        return cls(engine, counters)

    def submit(
        self, fn: Callable[..., Any], args: tuple[Any, ...], weight: int = 1
    ) -> asyncio.Future[Any]:
        op = new_op(fn, args, weight)
        self._pending.append(op)
        self._wakeup.set()
        if self._task is None or self._task.done():
            self._task = op.loop.create_task(self._drain(), name="falkit-store-write")
        return op.future

    async def read(self, fn: Callable[..., Any], args: tuple[Any, ...]) -> Any:
        """Run a read; once more on a new connection if this one was lost (reads repeat)."""
        from sqlalchemy.exc import DBAPIError

        for attempt in (1, 2):
            try:
                async with self._engine.connect() as conn:
                    return await conn.run_sync(fn, *args)
            except DBAPIError as exc:
                if attempt == 2 or not exc.connection_invalidated:
                    raise
        raise AssertionError("unreachable")

    async def close(self) -> None:
        """Apply what is queued, stop the writer, release every connection."""
        self._closing = True
        self._wakeup.set()
        if self._task is not None and not self._task.done():
            await asyncio.shield(self._task)
        while self._pending:  # left by a writer task that was cancelled (its loop shut down)
            self._pending.popleft().future.cancel()
        if self._conn is not None:
            await self._conn.close()
        await self._engine.dispose()

    async def _drain(self) -> None:
        while not (self._closing and not self._pending):
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._pending:
                batch = self._take_batch()
                try:
                    outcomes = await self._run(batch)
                except asyncio.CancelledError:  # the loop is shutting down
                    self._conn = None  # mid-transaction: never reused (the server rolls back)
                    for op in batch:
                        op.future.cancel()
                    raise
                resolve(list(zip(batch, outcomes, strict=True)))

    def _take_batch(self) -> list[Op]:
        batch: list[Op] = []
        weight = 0
        while self._pending and fits(weight, self._pending[0]):
            op = self._pending.popleft()
            batch.append(op)
            weight += op.weight
        return batch

    async def _run(self, batch: list[Op]) -> list[tuple[bool, Any]]:
        try:
            if self._conn is None:
                self._conn = await self._engine.connect()
            outcomes: list[tuple[bool, Any]] = await self._conn.run_sync(
                run_batch, batch, self._counters
            )
        except Exception as exc:
            outcomes = [(False, exc)] * len(batch)
        if self._conn is not None and self._conn.invalidated:
            await self._conn.close()
            self._conn = None
        return outcomes

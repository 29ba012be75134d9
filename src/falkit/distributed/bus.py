"""The cluster's event bus: an events table with increasing ids, and LISTEN/NOTIFY to wake.

Every event a worker's engine publishes (``JobEngine.sink``) becomes a row of
``falkit_cluster.events``; progress (queue positions, log lines, steps) is coalesced to at
most one row per job every ``PROGRESS_INTERVAL`` (the latest wins; any other event first
writes what was held back, so the order stays true). Rows are written by one writer task per
process, a batch per transaction, and each transaction ends with one ``NOTIFY falkit_events``
(no payload: the rows are the message).

Each process holds one LISTEN connection. On a notification (or every ``POLL_EVERY`` seconds,
should one be missed) it reads the rows after the last id it has seen, for the jobs it has
subscribers for and the messages between processes (rows without a job). A connection that
drops is reopened and the reading goes on from the same id, so nothing is lost. Writers take
a transaction-level advisory lock around their insert, so ids become visible in order and
"after the last id seen" never skips a row that commits late.

A job's ``seq`` numbers its events across the cluster: the worker that takes a job over
continues after the highest seq in the table (``offsets``), and ``(job_id, seq)`` is unique,
so a paused worker waking up late cannot add a second event 7.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from falkit.distributed.codec import decode, encode
from falkit.distributed.pg import SCHEMA, connect

if TYPE_CHECKING:
    import asyncpg

    from falkit.events import Event

logger = logging.getLogger("falkit.distributed.bus")

CHANNEL = "falkit_events"
PROGRESS = frozenset({"queued", "log", "step"})
PROGRESS_INTERVAL = 0.25
"""At most this often a progress row per job (4 a second)."""
POLL_EVERY = 2.0
"""Read new rows at least this often, notification or not."""
FETCH_LIMIT = 2000
WRITE_BATCH = 1000
_LOCK_KEY = 0x66616C6B6974_0004  # orders the commits of event inserts (see the docstring)
_INSERT = f"""
INSERT INTO {SCHEMA}.events (job_id, seq, type, body)
SELECT u.job_id, u.seq, u.type, u.body::jsonb
FROM unnest($1::text[], $2::int[], $3::text[], $4::text[])
    WITH ORDINALITY AS u(job_id, seq, type, body, n)
ORDER BY u.n
ON CONFLICT (job_id, seq) WHERE seq IS NOT NULL DO NOTHING
"""
_NEW = f"""
SELECT id, job_id, type, body::text AS body FROM {SCHEMA}.events
WHERE id > $1 AND (job_id IS NULL OR job_id = ANY($2::text[]))
ORDER BY id LIMIT $3
"""
_HISTORY = f"""
SELECT body::text AS body FROM {SCHEMA}.events
WHERE job_id = $1 AND seq IS NOT NULL ORDER BY seq
"""
_DB_ERRORS: tuple[type[BaseException], ...] = (OSError, ConnectionError, TimeoutError)

Row = tuple[str | None, int | None, str, str]
Subscriber = Callable[["Event"], None]
OnControl = Callable[[str, dict[str, Any]], None]


def _db_errors() -> tuple[type[BaseException], ...]:
    import asyncpg

    return (*_DB_ERRORS, asyncpg.PostgresError, asyncpg.InterfaceError)


class EventBus:
    """One process's side of the bus: ``publish`` (the engine's sink), ``control``
    (messages to whichever process runs a job), ``subscribe`` and ``history`` (readers)."""

    def __init__(self, database_url: str | None, role: str) -> None:
        self._url = database_url
        self._role = role
        self.offsets: dict[str, int] = {}
        self.on_control: OnControl | None = None
        self.reconnects = 0
        self._pending: list[Row] = []
        self._queued = self._written = 0
        self._written_changed = asyncio.Event()
        self._wake_writer = asyncio.Event()
        self._wake_reader = asyncio.Event()
        self._held: dict[str, Event] = {}
        self._last_progress: dict[str, float] = {}
        self._subscribers: dict[str, set[Subscriber]] = {}
        self._last_id = 0
        self._reader: asyncpg.Connection | None = None
        self._reader_lock = asyncio.Lock()
        self._writer: asyncpg.Connection | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._ticker: asyncio.Task[None] | None = None
        self._closing = False

    # ---- lifecycle ----

    async def start(self) -> EventBus:
        """Open the LISTEN connection (reading from the newest row on) and start the tasks."""
        async with self._reader_lock:
            conn = await self._reading()
            self._last_id = int(
                await conn.fetchval(f"SELECT coalesce(max(id), 0) FROM {SCHEMA}.events")
            )
        self._tasks = [
            asyncio.create_task(self._read_loop(), name="falkit-bus-read"),
            asyncio.create_task(self._write_loop(), name="falkit-bus-write"),
        ]
        return self

    async def aclose(self) -> None:
        """Write what is queued (held progress included), then close both connections."""
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.flush(), 10)
        self._closing = True
        for task in [*self._tasks, *([self._ticker] if self._ticker else [])]:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for conn in (self._reader, self._writer):
            if conn is not None and not conn.is_closed():
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(conn.close(), 5)

    # ---- writing ----

    def publish(self, event: Event) -> None:
        """Queue an event's row (the engine's sink: never waits); progress is coalesced."""
        job_id = event.job_id
        loop = asyncio.get_running_loop()
        if event.type in PROGRESS:
            now = loop.time()
            if now - self._last_progress.get(job_id, -1e9) < PROGRESS_INTERVAL:
                self._held[job_id] = event
                if self._ticker is None or self._ticker.done():
                    self._ticker = loop.create_task(self._tick(), name="falkit-bus-progress")
                return
            self._last_progress[job_id] = now
        else:
            held = self._held.pop(job_id, None)
            if held is not None:
                self._queue(held)
            if event.final:
                self._last_progress.pop(job_id, None)
        self._queue(event)

    def control(self, kind: str, body: dict[str, Any]) -> None:
        """A message to whichever process runs a job (``_deliver``, ``_follow``, ``_cancel``)."""
        self._add((None, None, kind, json.dumps(body, default=str)))

    async def flush(self) -> None:
        """Return once every row queued so far (held progress included) is committed."""
        for job_id in list(self._held):
            self._queue(self._held.pop(job_id))
        target = self._queued
        while self._written < target:
            self._written_changed.clear()
            await self._written_changed.wait()

    def _queue(self, event: Event) -> None:
        seq = event.seq + self.offsets.get(event.job_id, 0)
        self._add((event.job_id, seq, event.type, encode(event, seq)))

    def _add(self, row: Row) -> None:
        self._pending.append(row)
        self._queued += 1
        self._wake_writer.set()

    async def _tick(self) -> None:
        """Write held progress once its job's interval has passed; end when none is held."""
        loop = asyncio.get_running_loop()
        while self._held:
            await asyncio.sleep(PROGRESS_INTERVAL / 2)
            now = loop.time()
            for job_id, event in list(self._held.items()):
                if now - self._last_progress.get(job_id, -1e9) >= PROGRESS_INTERVAL:
                    del self._held[job_id]
                    self._last_progress[job_id] = now
                    self._queue(event)

    async def _write_loop(self) -> None:
        errors = _db_errors()
        failures = 0
        while True:
            await self._wake_writer.wait()
            self._wake_writer.clear()
            while self._pending:
                batch = self._pending[:WRITE_BATCH]
                try:
                    await self._insert(batch)
                except errors as exc:
                    failures += 1
                    logger.warning("event bus: writing failed (%s); trying again", exc)
                    await self._drop_writer()
                    await asyncio.sleep(min(5.0, 0.1 * 2**failures))
                    continue
                failures = 0
                del self._pending[: len(batch)]
                self._written += len(batch)
                self._written_changed.set()

    async def _insert(self, batch: list[Row]) -> None:
        if self._writer is None or self._writer.is_closed():
            self._writer = await connect(self._url, f"{self._role}-events")
        conn = self._writer
        columns = list(zip(*batch, strict=True))
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", _LOCK_KEY)
            await conn.execute(_INSERT, *columns)
            await conn.execute("SELECT pg_notify($1, '')", CHANNEL)

    async def _drop_writer(self) -> None:
        conn, self._writer = self._writer, None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.terminate()

    # ---- reading ----

    def subscribe(self, job_id: str, callback: Subscriber) -> Callable[[], None]:
        """Call ``callback(event)`` for each new event of the job; returns the unsubscribe."""
        self._subscribers.setdefault(job_id, set()).add(callback)

        def unsubscribe() -> None:
            callbacks = self._subscribers.get(job_id)
            if callbacks is not None:
                callbacks.discard(callback)
                if not callbacks:
                    del self._subscribers[job_id]

        self._wake_reader.set()
        return unsubscribe

    async def history(self, job_id: str) -> list[Event]:
        """The job's events in the table, in seq order."""
        rows = await self._query(_HISTORY, job_id)
        return [decode(json.loads(row["body"])) for row in rows]

    async def max_seq(self, job_id: str) -> int:
        """The highest seq of the job's events so far (0: none)."""
        rows = await self._query(
            f"SELECT coalesce(max(seq), 0) AS seq FROM {SCHEMA}.events WHERE job_id = $1", job_id
        )
        return int(rows[0]["seq"])

    async def _query(self, sql: str, *args: Any) -> list[Any]:
        errors = _db_errors()
        for attempt in range(5):
            try:
                async with self._reader_lock:
                    conn = await self._reading()
                    rows: list[Any] = await conn.fetch(sql, *args)
                    return rows
            except errors:
                await self._drop_reader()
                if attempt == 4:
                    raise
                await asyncio.sleep(0.1 * 2**attempt)
        raise AssertionError("unreachable")

    async def _reading(self) -> asyncpg.Connection:
        """The LISTEN connection, opened again if it was closed (then read from the last id)."""
        if self._reader is not None and not self._reader.is_closed():
            return self._reader
        conn = await connect(self._url, f"{self._role}-listen")
        await conn.add_listener(CHANNEL, self._notified)
        conn.add_termination_listener(lambda _conn: self._wake_reader.set())
        if self._reader is not None:
            self.reconnects += 1
        self._reader = conn
        self._wake_reader.set()  # catch up on what came while it was closed
        return conn

    def _notified(self, *_args: Any) -> None:
        self._wake_reader.set()

    async def _drop_reader(self) -> None:
        conn, self._reader = self._reader, None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.terminate()

    async def _read_loop(self) -> None:
        errors = _db_errors()
        failures = 0
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake_reader.wait(), POLL_EVERY)
            self._wake_reader.clear()
            try:
                await self._read_new()
                failures = 0
            except errors as exc:
                failures += 1
                logger.warning("event bus: reading failed (%s); reconnecting", exc)
                await self._drop_reader()
                await asyncio.sleep(min(5.0, 0.1 * 2**failures))
                self._wake_reader.set()

    async def _read_new(self) -> None:
        while True:
            async with self._reader_lock:
                conn = await self._reading()
                rows = await conn.fetch(_NEW, self._last_id, list(self._subscribers), FETCH_LIMIT)
            for row in rows:
                self._last_id = int(row["id"])
                self._dispatch(row["job_id"], row["type"], json.loads(row["body"]))
            if len(rows) < FETCH_LIMIT:
                return

    def _dispatch(self, job_id: str | None, kind: str, body: dict[str, Any]) -> None:
        if job_id is None:
            if self.on_control is not None:
                self.on_control(kind, body)
            return
        callbacks = self._subscribers.get(job_id)
        if not callbacks:
            return
        event = decode(body)
        for callback in list(callbacks):
            try:
                callback(event)
            except Exception:  # a subscriber's bug must not stop the bus
                logger.exception("event bus: a subscriber of job %s failed", job_id)

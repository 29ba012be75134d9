"""Database URLs and engines: a sync pysqlite engine for SQLite, an asyncpg one for PostgreSQL.

SQLite (the default, a file under FALKIT_HOME) runs on the standard library's driver through
SQLAlchemy Core, from threads the store owns: no aiosqlite, no ``sqlalchemy.ext.asyncio``, so
a CLI opening its library imports little. Every connection gets a busy timeout and foreign
keys; every write transaction starts with ``BEGIN IMMEDIATE``, so several processes (a CLI
generate and a ``jobs resume``) can share one file: a writer waits for the lock instead of
failing half way. The file is switched to WAL once, so readers never wait for the writer.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from falkit.errors import StoreError

if TYPE_CHECKING:
    from sqlalchemy.engine import URL, Connection, Engine
    from sqlalchemy.ext.asyncio import AsyncEngine

BUSY_TIMEOUT_MS = 30_000
STALL_TIMEOUT = 10.0
"""Seconds a PostgreSQL session may sit idle inside a transaction before the server ends it.

A falkit process paused or frozen mid-transaction (SIGSTOP, a suspended laptop, a VM stall)
would otherwise keep its row and advisory locks, and every other process writing that job
would wait for it; its own write is run again when it wakes (see writer.run_batch)."""
WRITE_OPTION = "falkit_write"  # execution option: this connection's transactions write
_DRIVERS = {"sqlite": "sqlite+pysqlite", "postgresql": "postgresql+asyncpg"}


def mask_url(url: str) -> str:
    """The URL as it may be shown: any password replaced by ***."""
    return re.sub(r"(//[^:/@\s]*:)[^\s/]*@", r"\1***@", url)


def parse_url(url: str) -> URL:
    """The URL with the driver falkit uses: any SQLite or PostgreSQL spelling is accepted.

    ``sqlite+aiosqlite:///x.db`` (the old default) and ``sqlite:///x.db`` both mean pysqlite;
    ``postgres://…`` and ``postgresql://…`` mean asyncpg.
    """
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise StoreError(
            f"invalid database URL {mask_url(url)!r}: {exc}; check FALKIT_DATABASE_URL "
            "(e.g. sqlite:///path/falkit.db or postgresql://user@host/db)"
        ) from None
    backend = parsed.get_backend_name()
    backend = {"postgres": "postgresql"}.get(backend, backend)
    if backend not in _DRIVERS:
        raise StoreError(
            f"unsupported database {mask_url(url)!r}: falkit stores its library in SQLite or "
            "PostgreSQL; check FALKIT_DATABASE_URL"
        )
    return parsed.set(drivername=_DRIVERS[backend])


def is_memory(url: URL) -> bool:
    return url.get_backend_name() == "sqlite" and url.database in (None, "", ":memory:")


def sqlite_engine(url: URL, pool_size: int) -> Engine:
    """A sync engine whose connections may move between the store's threads (one at a time)."""
    from sqlalchemy import create_engine

    kwargs: dict[str, Any] = {
        "connect_args": {
            "timeout": BUSY_TIMEOUT_MS / 1000,
            "isolation_level": None,  # we open transactions ourselves (see _on_begin)
            "check_same_thread": False,  # the pool hands a connection to one thread at a time
        }
    }
    if is_memory(url):
        from sqlalchemy.pool import StaticPool

        kwargs["poolclass"] = StaticPool
    else:
        Path(url.database or "").expanduser().parent.mkdir(parents=True, exist_ok=True)
        kwargs.update(pool_size=pool_size, max_overflow=1)
    engine = create_engine(url, **kwargs)
    _install_sqlite_hooks(engine)
    return engine


def postgres_engine(url: URL, pool_size: int, stall_timeout: float) -> AsyncEngine:
    """An asyncpg engine holding at most ``pool_size`` connections (writer plus readers).

    No overflow: the pool is the store's whole footprint on the server, so many falkit
    processes on one PostgreSQL stay within its connection limit; a read beyond the pool waits
    for a free connection. Its sessions end after ``stall_timeout`` idle in a transaction.
    """
    import os

    from sqlalchemy.ext.asyncio import create_async_engine

    settings = server_settings(f"falkit-store-{os.getpid()}", stall_timeout)
    return create_async_engine(
        url,
        pool_size=pool_size,
        max_overflow=0,
        pool_timeout=120,
        pool_pre_ping=True,
        connect_args={"server_settings": settings},
    )


def server_settings(application_name: str, stall_timeout: float = STALL_TIMEOUT) -> dict[str, str]:
    """The session settings of every falkit connection to PostgreSQL: a name to find it by in
    ``pg_stat_activity``, and the stall timeout (see STALL_TIMEOUT)."""
    return {
        "application_name": application_name,
        "idle_in_transaction_session_timeout": str(max(1, round(stall_timeout * 1000))),
    }


def _install_sqlite_hooks(engine: Engine) -> None:
    from sqlalchemy import event

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        for pragma in (
            f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}",
            "PRAGMA synchronous = NORMAL",
            "PRAGMA foreign_keys = ON",
        ):
            cursor.execute(pragma)
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # The driver runs in autocommit mode; we open transactions ourselves, taking the write
        # lock up front for writers (a deferred one could fail when it first writes).
        writing = conn.get_execution_options().get(WRITE_OPTION, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if writing else "BEGIN")


def ensure_wal(engine: Engine) -> None:
    """Put a SQLite file in WAL mode (it stays so), so readers never block the writer.

    Retried here because SQLite refuses the switch at once, without its busy timeout, while
    another process is opening the same fresh file. A filesystem without WAL keeps its mode.
    Runs on the raw driver connection: the switch is refused inside a transaction.
    """
    import sqlite3

    if is_memory(engine.url):
        return
    raw = engine.raw_connection()
    try:
        for attempt in range(60):
            try:
                mode = raw.cursor().execute("PRAGMA journal_mode").fetchone()
                if mode and str(mode[0]).lower() == "wal":
                    return
                raw.cursor().execute("PRAGMA journal_mode = WAL").fetchone()
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) and "busy" not in str(exc):
                    raise
            time.sleep(min(0.005 * 2**attempt, 0.25))
    finally:
        raw.close()
    raise StoreError(
        f"cannot open database at {engine.url.database}: it stayed locked; "
        "is another program holding it open?"
    )

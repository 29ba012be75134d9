"""The database engine: one URL in, a migrated async engine out, for SQLite or PostgreSQL.

SQLite (the default, a file under FALKIT_HOME) is opened in WAL mode with a busy timeout, and
every write transaction starts with ``BEGIN IMMEDIATE``, so several processes (a CLI generate and
a ``jobs resume``) can share one file: a writer waits for the lock instead of failing half way.
Migrations run on open under a lock (SQLite's write lock, PostgreSQL's advisory lock), so two
processes opening a fresh database at once migrate it once.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from falkit.errors import StoreError

if TYPE_CHECKING:
    from sqlalchemy.engine import URL, Connection
    from sqlalchemy.ext.asyncio import AsyncEngine

BUSY_TIMEOUT_MS = 30_000
WRITE_OPTION = "falkit_write"  # execution option: this transaction will write
VERSION_TABLE = "falkit_alembic_version"
SCRIPT_LOCATION = "falkit.store:migrations"
_MIGRATION_LOCK_KEY = 0x66616C6B6974  # "falkit", for pg_advisory_xact_lock
_DRIVERS = {"sqlite": "sqlite+aiosqlite", "postgresql": "postgresql+asyncpg"}


def mask_url(url: str) -> str:
    """The URL as it may be shown: any password replaced by ***."""
    return re.sub(r"(//[^:/@\s]*:)[^\s/]*@", r"\1***@", url)


def parse_url(url: str) -> URL:
    """The URL with its async driver: ``sqlite:///x.db`` and ``postgres://…`` are accepted."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise StoreError(
            f"invalid database URL {mask_url(url)!r}: {exc}; check FALKIT_DATABASE_URL "
            "(e.g. sqlite+aiosqlite:///path/falkit.db or postgresql+asyncpg://user@host/db)"
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


def create_engine(url: URL) -> AsyncEngine:
    """An async engine for the URL; SQLite gets its pragmas and locking on every connection."""
    from sqlalchemy.ext.asyncio import create_async_engine

    if url.get_backend_name() != "sqlite":
        return create_async_engine(url, pool_pre_ping=True)
    kwargs: dict[str, Any] = {
        "connect_args": {"timeout": BUSY_TIMEOUT_MS / 1000, "isolation_level": None}
    }
    if is_memory(url):
        from sqlalchemy.pool import StaticPool

        kwargs["poolclass"] = StaticPool
    else:
        Path(url.database or "").expanduser().parent.mkdir(parents=True, exist_ok=True)
    engine = create_async_engine(url, **kwargs)
    _install_sqlite_hooks(engine)
    return engine


def _install_sqlite_hooks(engine: AsyncEngine) -> None:
    from sqlalchemy import event

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        for pragma in (
            f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}",
            "PRAGMA synchronous = NORMAL",
            "PRAGMA foreign_keys = ON",
        ):
            cursor.execute(pragma)
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # The driver runs in autocommit mode; we open transactions ourselves, taking the write
        # lock up front for writers (a deferred one could fail when it first writes).
        writing = conn.get_execution_options().get(WRITE_OPTION, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if writing else "BEGIN")


async def ensure_wal(url: URL) -> None:
    """Put a SQLite file in WAL mode (it stays so), so readers never block the writer.

    Retried here because SQLite refuses the switch at once, without its busy timeout, while
    another process is opening the same fresh file. A filesystem without WAL keeps its mode.
    """
    import asyncio
    import sqlite3

    import aiosqlite

    if url.get_backend_name() != "sqlite" or is_memory(url):
        return
    for attempt in range(60):
        try:
            async with aiosqlite.connect(url.database or "", timeout=BUSY_TIMEOUT_MS / 1000) as db:
                await db.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) and "busy" not in str(exc):
                raise
        await asyncio.sleep(min(0.005 * 2**attempt, 0.25))
    raise StoreError(
        f"cannot open database at {url.database}: it stayed locked; "
        "is another program holding it open?"
    )


def writer(engine: AsyncEngine) -> AsyncEngine:
    """The same engine, marked so its transactions take SQLite's write lock when they begin."""
    return engine.execution_options(**{WRITE_OPTION: True})


async def migrate(engine: AsyncEngine) -> None:
    """Upgrade the schema to the newest migration (a no-op when it is already there)."""
    from sqlalchemy import text

    await ensure_wal(engine.url)
    async with writer(engine).begin() as conn:
        if conn.dialect.name == "postgresql":
            await conn.execute(text(f"SELECT pg_advisory_xact_lock({_MIGRATION_LOCK_KEY})"))
        await conn.run_sync(_upgrade)


def alembic_config(connection: Connection | None = None) -> Any:
    """An Alembic config for the migrations shipped in this package (no alembic.ini)."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", SCRIPT_LOCATION)
    config.set_main_option("path_separator", "os")
    config.attributes["connection"] = connection
    return config


def _upgrade(connection: Connection) -> None:
    from alembic import command
    from alembic.util import CommandError

    try:
        command.upgrade(alembic_config(connection), "head")
    except CommandError as exc:
        raise StoreError(
            f"cannot migrate the library database: {exc}; it may have been created by a newer "
            "falkit (upgrade falkit) or point FALKIT_DATABASE_URL at another database"
        ) from None

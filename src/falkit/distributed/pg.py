"""Plain asyncpg connections to the library's PostgreSQL (LISTEN and PgQueuer need them)."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from falkit.errors import ValidationError
from falkit.store.db import STALL_TIMEOUT, server_settings

if TYPE_CHECKING:
    import asyncpg

SCHEMA = "falkit_cluster"


def dsn(database_url: str | None) -> str:
    """The asyncpg DSN of a PostgreSQL FALKIT_DATABASE_URL; a clear error for anything else."""
    from falkit.store.db import parse_url

    if not database_url:
        raise ValidationError.field(
            "FALKIT_DATABASE_URL",
            "is not set: several machines share one PostgreSQL database",
            "postgresql://user@host/db",
        )
    url = parse_url(database_url)
    if url.get_backend_name() != "postgresql":
        raise ValidationError.field(
            "FALKIT_DATABASE_URL",
            "is SQLite: workers and replicas share one PostgreSQL database",
            "postgresql://user@host/db",
        )
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


async def connect(
    database_url: str | None, role: str, stall_timeout: float = STALL_TIMEOUT
) -> asyncpg.Connection:
    """A connection named ``falkit-<role>-<pid>`` in pg_stat_activity (easy to find), ended by
    the server after ``stall_timeout`` idle inside a transaction (an event insert holds the
    bus's advisory lock: a paused process must not hold it for the whole cluster)."""
    import asyncpg

    name = f"falkit-{role}-{os.getpid()}"
    conn: asyncpg.Connection = await asyncpg.connect(
        dsn(database_url), server_settings=server_settings(name, stall_timeout), timeout=30
    )
    return conn

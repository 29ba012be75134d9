"""Is the schema current? One cheap SELECT on open; Alembic only when it is not.

Importing Alembic (and through it the ORM and Mako) costs more than the rest of a store's
start-up, and almost every open finds the database already at the newest revision. So open
reads the version row and compares it with ``HEAD_REVISION``; only a missing or older version
imports Alembic and migrates, under a lock (SQLite's write lock, PostgreSQL's advisory lock), so
two processes opening a fresh database at once migrate it once. A test keeps ``HEAD_REVISION``
equal to Alembic's head, so the two cannot drift.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from falkit.errors import StoreError

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

HEAD_REVISION = "0004"  # the newest file in migrations/versions; append-only
VERSION_TABLE = "falkit_alembic_version"
SCRIPT_LOCATION = "falkit.store:migrations"
_MIGRATION_LOCK_KEY = 0x66616C6B6974  # "falkit", for pg_advisory_xact_lock


def is_current(connection: Connection) -> bool:
    """Whether the database is at ``HEAD_REVISION`` (False when it has no version table)."""
    from sqlalchemy import text
    from sqlalchemy.exc import DBAPIError

    try:
        versions = list(connection.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")))
    except DBAPIError:
        return False  # no table yet (or unreadable: migrate() reports the real problem)
    finally:
        connection.rollback()
    return [row[0] for row in versions] == [HEAD_REVISION]


def migrate(connection: Connection) -> None:
    """Upgrade to the newest revision in one transaction, holding the migration lock.

    The connection must take the write lock when it begins (SQLite: ``BEGIN IMMEDIATE``).
    Alembic reads the version again under the lock, so a loser of the race does nothing.
    """
    from sqlalchemy import text

    with connection.begin():
        if connection.dialect.name == "postgresql":
            connection.execute(text(f"SELECT pg_advisory_xact_lock({_MIGRATION_LOCK_KEY})"))
        upgrade(connection, "head")


def upgrade(connection: Connection, revision: str) -> None:
    """Run Alembic's upgrade to ``revision`` over this connection."""
    from alembic import command
    from alembic.util import CommandError

    try:
        command.upgrade(alembic_config(connection), revision)
    except CommandError as exc:
        raise StoreError(
            f"cannot migrate the library database: {exc}; it may have been created by a newer "
            "falkit (upgrade falkit) or point FALKIT_DATABASE_URL at another database"
        ) from None


def alembic_config(connection: Connection | None = None) -> Any:
    """An Alembic config for the migrations shipped in this package (no alembic.ini)."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", SCRIPT_LOCATION)
    config.set_main_option("path_separator", "os")
    config.attributes["connection"] = connection
    return config

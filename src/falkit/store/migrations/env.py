"""Alembic's entry point: migrate over the connection falkit passes in (never a URL or ini)."""

from __future__ import annotations

from alembic import context

from falkit.store.models import metadata
from falkit.store.schema import VERSION_TABLE


def run() -> None:
    connection = context.config.attributes.get("connection")
    if connection is None:
        raise RuntimeError(
            "falkit migrations run through falkit.store.schema.migrate, with a connection"
        )
    context.configure(
        connection=connection,
        target_metadata=metadata,
        version_table=VERSION_TABLE,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


run()

"""Jobs can be starred (the web page's gallery): jobs.starred.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-08

Self-contained, as 0001 and 0002: plain SQLAlchemy types. Not null, false for every older row
(a server default, so adding the column to a full table needs no rewrite of its rows).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "jobs", sa.Column("starred", sa.Boolean(), nullable=False, server_default=sa.false())
    )


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("starred")

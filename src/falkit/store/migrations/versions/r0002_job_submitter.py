"""Jobs remember who claimed their submit: jobs.submitter.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01

The job engine names the process (or task) that marked a job ``submitting``, so a stuck claim
can be told apart from a live one. Nullable: older rows were claimed by nobody in particular.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("jobs", sa.Column("submitter", sa.String(200), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("submitter")

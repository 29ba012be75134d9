"""Initial schema: jobs, images, loras, uploads, batches.

Revision ID: 0001
Revises:
Create Date: 2026-11-23

Self-contained on purpose (plain SQLAlchemy types, nothing imported from falkit.store.models),
so later changes to the models never change what this migration did.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def _when(name: str, *, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _jobs() -> None:
    op.create_table(
        "jobs",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("model", sa.String(100), nullable=False),
        sa.Column("endpoint_id", sa.String(200), nullable=False),
        sa.Column("arguments", sa.JSON(), nullable=False),
        sa.Column("prompt", sa.Text(), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("request_id", sa.String(100), nullable=True),
        sa.Column("status_url", sa.Text(), nullable=True),
        sa.Column("response_url", sa.Text(), nullable=True),
        sa.Column("cancel_url", sa.Text(), nullable=True),
        sa.Column("seed", sa.String(40), nullable=True),
        sa.Column("estimated_cost", sa.Float(), nullable=True),
        sa.Column("cost_usd", sa.Float(), nullable=True),
        sa.Column("billable_units", sa.Float(), nullable=True),
        sa.Column("timings", sa.JSON(), nullable=True),
        sa.Column("output", sa.JSON(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("error_type", sa.String(100), nullable=True),
        sa.Column("queue_position", sa.Integer(), nullable=True),
        sa.Column("batch_id", sa.String(100), nullable=True),
        sa.Column("batch_index", sa.Integer(), nullable=True),
        _when("created_at"),
        _when("submitted_at", nullable=True),
        _when("completed_at", nullable=True),
        _when("updated_at"),
        sa.PrimaryKeyConstraint("id", name="pk_jobs"),
        sa.UniqueConstraint("request_id", name="uq_jobs_request_id"),
    )
    op.create_index("ix_jobs_status", "jobs", ["status"])
    op.create_index("ix_jobs_created_at", "jobs", ["created_at"])
    op.create_index("ix_jobs_batch_id_batch_index", "jobs", ["batch_id", "batch_index"])


def _images() -> None:
    op.create_table(
        "images",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("job_id", sa.String(64), nullable=False),
        sa.Column("image_index", sa.Integer(), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("local_path", sa.Text(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("width", sa.Integer(), nullable=False),
        sa.Column("height", sa.Integer(), nullable=False),
        sa.Column("content_type", sa.String(100), nullable=False),
        sa.Column("nsfw", sa.Boolean(), nullable=True),
        _when("created_at"),
        sa.PrimaryKeyConstraint("id", name="pk_images"),
        sa.ForeignKeyConstraint(
            ["job_id"], ["jobs.id"], name="fk_images_job_id_jobs", ondelete="CASCADE"
        ),
        sa.UniqueConstraint("job_id", "image_index", name="uq_images_job_id_image_index"),
    )
    op.create_index("ix_images_sha256", "images", ["sha256"])


def _library() -> None:
    op.create_table(
        "loras",
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("trigger_word", sa.String(200), nullable=True),
        sa.Column("config_url", sa.Text(), nullable=True),
        sa.Column("local_path", sa.Text(), nullable=True),
        sa.Column("job_id", sa.String(64), nullable=True),
        sa.Column("params", sa.JSON(), nullable=False),
        _when("created_at"),
        sa.PrimaryKeyConstraint("name", name="pk_loras"),
    )
    op.create_table(
        "uploads",
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        _when("created_at"),
        sa.PrimaryKeyConstraint("sha256", name="pk_uploads"),
    )
    op.create_table(
        "batches",
        sa.Column("id", sa.String(100), nullable=False),
        sa.Column("spec", sa.JSON(), nullable=False),
        sa.Column("out_dir", sa.Text(), nullable=True),
        sa.Column("budget_usd", sa.Float(), nullable=True),
        sa.Column("total_jobs", sa.Integer(), nullable=False),
        _when("created_at"),
        sa.PrimaryKeyConstraint("id", name="pk_batches"),
    )


def upgrade() -> None:
    _jobs()
    _images()
    _library()


def downgrade() -> None:
    for table in ("images", "jobs", "loras", "uploads", "batches"):
        op.drop_table(table)

"""The tables, as SQLAlchemy Core ``Table`` objects; the same on SQLite and PostgreSQL.

Core, not the ORM: the store builds its small frozen records straight from rows, so opening a
store never pays for importing ``sqlalchemy.orm`` (a large share of a CLI's start-up).

Types are portable: String ids, JSON documents, UTC timestamps, Float money. A seed is kept as
decimal text, because Fal's seeds can exceed a signed 64-bit integer (PostgreSQL's BIGINT).
A change here needs a new migration in ``migrations/versions`` (a test compares the two).

One invariant the store relies on: a job has image rows only once it is ``completed`` (images
are written by ``complete_job`` together with that status, which nothing overwrites), so a
record of any other job is built without looking for images.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
    false,
)

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class UTCDateTime(TypeDecorator[dt.datetime]):
    """A timezone-aware timestamp stored as UTC; SQLite's naive values come back as UTC."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        value = value.astimezone(dt.UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(
        self, value: dt.datetime | None, dialect: Dialect
    ) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC)


metadata = MetaData(naming_convention=NAMING)


def _when(name: str, *, nullable: bool = False) -> Column[dt.datetime]:
    return Column(name, UTCDateTime(), nullable=nullable)


# A request we send (or sent) to Fal: written before submit, updated as it goes.
jobs = Table(
    "jobs",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("kind", String(16), nullable=False),
    Column("model", String(100), nullable=False),
    Column("endpoint_id", String(200), nullable=False),
    Column("arguments", JSON, nullable=False),
    Column("prompt", Text),  # copy of arguments["prompt"], for search
    Column("status", String(16), nullable=False, index=True),
    Column("request_id", String(100), unique=True),
    Column("status_url", Text),
    Column("response_url", Text),
    Column("cancel_url", Text),
    Column("seed", String(40)),
    Column("estimated_cost", Float),
    Column("cost_usd", Float),
    Column("billable_units", Float),
    Column("timings", JSON),
    Column("output", JSON),
    Column("error", Text),
    Column("error_type", String(100)),
    Column("queue_position", Integer),  # no longer written (kept for old rows and old readers)
    Column("batch_id", String(100)),
    Column("batch_index", Integer),
    _when("created_at"),
    _when("submitted_at", nullable=True),
    _when("completed_at", nullable=True),
    _when("updated_at"),
    Column("submitter", String(200)),  # who claimed the submit (migration 0002)
    Column("starred", Boolean, nullable=False, default=False, server_default=false()),  # 0003
    Index("ix_jobs_created_at", "created_at"),
    Index("ix_jobs_batch_id_batch_index", "batch_id", "batch_index"),
)

# An output image of a job, downloaded, hashed and verified.
images = Table(
    "images",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("job_id", String(64), ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False),
    Column("image_index", Integer, nullable=False),
    Column("url", Text, nullable=False),
    Column("local_path", Text, nullable=False),
    Column("sha256", String(64), nullable=False, index=True),
    Column("size_bytes", BigInteger, nullable=False),
    Column("width", Integer, nullable=False),
    Column("height", Integer, nullable=False),
    Column("content_type", String(100), nullable=False),
    Column("nsfw", Boolean),
    _when("created_at"),
    UniqueConstraint("job_id", "image_index"),
)

# A LoRA known by name: trained here or added from a URL.
loras = Table(
    "loras",
    metadata,
    Column("name", String(200), primary_key=True),
    Column("url", Text, nullable=False),
    Column("trigger_word", String(200)),
    Column("config_url", Text),
    Column("local_path", Text),
    Column("job_id", String(64)),
    Column("params", JSON, nullable=False),
    _when("created_at"),
)

# A local file already uploaded to Fal's storage, found again by its content hash.
uploads = Table(
    "uploads",
    metadata,
    Column("sha256", String(64), primary_key=True),
    Column("url", Text, nullable=False),
    Column("size_bytes", BigInteger, nullable=False),
    _when("created_at"),
)

# A bulk generation whose jobs carry its id.
batches = Table(
    "batches",
    metadata,
    Column("id", String(100), primary_key=True),
    Column("spec", JSON, nullable=False),
    Column("out_dir", Text),
    Column("budget_usd", Float),
    Column("total_jobs", Integer, nullable=False),
    _when("created_at"),
)

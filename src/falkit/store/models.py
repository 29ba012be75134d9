"""The tables, as SQLAlchemy 2 ORM models; the same on SQLite and PostgreSQL.

Types are portable: String ids, JSON documents, UTC timestamps, Float money. A seed is kept as
decimal text, because Fal's seeds can exceed a signed 64-bit integer (PostgreSQL's BIGINT).
A change here needs a new migration in ``migrations/versions`` (a test compares the two).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from falkit.store.records import BatchRecord, ImageRecord, JobRecord, JobStatus, LoraRecord

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


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Job(Base):
    """A request we send (or sent) to Fal: written before submit, updated as it goes."""

    __tablename__ = "jobs"
    __table_args__ = (
        Index("ix_jobs_created_at", "created_at"),
        Index("ix_jobs_batch_id_batch_index", "batch_id", "batch_index"),
    )

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    model: Mapped[str] = mapped_column(String(100))
    endpoint_id: Mapped[str] = mapped_column(String(200))
    arguments: Mapped[dict[str, Any]] = mapped_column(JSON)
    prompt: Mapped[str | None] = mapped_column(Text)  # copy of arguments["prompt"], for search
    status: Mapped[str] = mapped_column(String(16), index=True)
    request_id: Mapped[str | None] = mapped_column(String(100), unique=True)
    status_url: Mapped[str | None] = mapped_column(Text)
    response_url: Mapped[str | None] = mapped_column(Text)
    cancel_url: Mapped[str | None] = mapped_column(Text)
    seed: Mapped[str | None] = mapped_column(String(40))
    estimated_cost: Mapped[float | None] = mapped_column(Float)
    cost_usd: Mapped[float | None] = mapped_column(Float)
    billable_units: Mapped[float | None] = mapped_column(Float)
    timings: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    output: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    error: Mapped[str | None] = mapped_column(Text)
    error_type: Mapped[str | None] = mapped_column(String(100))
    queue_position: Mapped[int | None] = mapped_column(Integer)
    batch_id: Mapped[str | None] = mapped_column(String(100))
    batch_index: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    submitted_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    completed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)

    images: Mapped[list[Image]] = relationship(
        back_populates="job", order_by="Image.index", lazy="selectin", cascade="all, delete-orphan"
    )

    def to_record(self) -> JobRecord:
        status: JobStatus = self.status  # type: ignore[assignment]
        return JobRecord(
            id=self.id,
            kind=self.kind,
            model=self.model,
            endpoint_id=self.endpoint_id,
            arguments=dict(self.arguments or {}),
            status=status,
            request_id=self.request_id,
            status_url=self.status_url,
            response_url=self.response_url,
            cancel_url=self.cancel_url,
            seed=int(self.seed) if self.seed is not None else None,
            estimated_cost=self.estimated_cost,
            cost_usd=self.cost_usd,
            billable_units=self.billable_units,
            timings=self.timings,
            output=self.output,
            error=self.error,
            error_type=self.error_type,
            queue_position=self.queue_position,
            batch_id=self.batch_id,
            batch_index=self.batch_index,
            created_at=self.created_at,
            submitted_at=self.submitted_at,
            completed_at=self.completed_at,
            updated_at=self.updated_at,
            images=tuple(image.to_record() for image in self.images),
        )


class Image(Base):
    """An output image of a job, downloaded, hashed and verified."""

    __tablename__ = "images"
    __table_args__ = (UniqueConstraint("job_id", "image_index"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    index: Mapped[int] = mapped_column("image_index", Integer)
    url: Mapped[str] = mapped_column(Text)
    local_path: Mapped[str] = mapped_column(Text)
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    content_type: Mapped[str] = mapped_column(String(100))
    nsfw: Mapped[bool | None] = mapped_column(Boolean)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)

    job: Mapped[Job] = relationship(back_populates="images")

    def to_record(self) -> ImageRecord:
        return ImageRecord(
            id=self.id,
            job_id=self.job_id,
            index=self.index,
            url=self.url,
            local_path=self.local_path,
            sha256=self.sha256,
            size_bytes=self.size_bytes,
            width=self.width,
            height=self.height,
            content_type=self.content_type,
            nsfw=self.nsfw,
            created_at=self.created_at,
        )


class Lora(Base):
    """A LoRA known by name: trained here or added from a URL."""

    __tablename__ = "loras"

    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    url: Mapped[str] = mapped_column(Text)
    trigger_word: Mapped[str | None] = mapped_column(String(200))
    config_url: Mapped[str | None] = mapped_column(Text)
    local_path: Mapped[str | None] = mapped_column(Text)
    job_id: Mapped[str | None] = mapped_column(String(64))
    params: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)

    def to_record(self) -> LoraRecord:
        return LoraRecord(
            name=self.name,
            url=self.url,
            trigger_word=self.trigger_word,
            config_url=self.config_url,
            local_path=self.local_path,
            job_id=self.job_id,
            params=dict(self.params or {}),
            created_at=self.created_at,
        )


class Upload(Base):
    """A local file already uploaded to Fal's storage, found again by its content hash."""

    __tablename__ = "uploads"

    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    url: Mapped[str] = mapped_column(Text)
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)


class Batch(Base):
    """A bulk generation whose jobs carry its id."""

    __tablename__ = "batches"

    id: Mapped[str] = mapped_column(String(100), primary_key=True)
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    out_dir: Mapped[str | None] = mapped_column(Text)
    budget_usd: Mapped[float | None] = mapped_column(Float)
    total_jobs: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)

    def to_record(self) -> BatchRecord:
        return BatchRecord(
            id=self.id,
            spec=dict(self.spec or {}),
            out_dir=self.out_dir,
            budget_usd=self.budget_usd,
            total_jobs=self.total_jobs,
            created_at=self.created_at,
        )

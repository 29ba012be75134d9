"""JobStore: the journal that makes "no job lost or paid for twice" true.

A job's row is written before its submit (``pending``), marked ``submitting`` right before the
POST, and gets its request id the moment submit returns. Each step is one short transaction, so
a crash at any point leaves a row saying exactly how far the job got.
"""

from __future__ import annotations

from typing import Any, Self

from sqlalchemy import ColumnElement, case, func, or_, select, update

from falkit.errors import StoreError, ValidationError
from falkit.store.base import no_job, rowcount
from falkit.store.ids import new_id
from falkit.store.library import LibraryMixin
from falkit.store.models import Image, Job, utcnow
from falkit.store.records import (
    JOB_KINDS,
    JOB_STATUSES,
    UNFINISHED,
    JobRecord,
    JobStatus,
    NewImage,
)

_NOT_OVERWRITTEN = ("completed", "failed", "cancelled")  # set_status leaves these alone
_FAIL_STATUSES = ("failed", "cancelled", "unknown")


class JobStore(LibraryMixin):
    """Jobs, images, LoRAs, uploads and batches in SQLite or PostgreSQL."""

    @classmethod
    async def open(cls, url: str) -> Self:
        """Open (creating the SQLite file and its folder) and migrate to the newest schema."""
        from falkit.store.db import create_engine, mask_url, migrate, parse_url

        parsed = parse_url(url)
        engine = None
        try:
            engine = create_engine(parsed)
            await migrate(engine)
        except Exception as exc:
            if engine is not None:
                await engine.dispose()
            if isinstance(exc, StoreError):
                raise
            reason = mask_url(str(exc) or type(exc).__name__).splitlines()[0]
            raise StoreError(
                f"cannot open database at {mask_url(url)}: {reason}; check FALKIT_DATABASE_URL"
            ) from exc
        return cls(engine, url)

    # ---- the life of a job ----

    async def create_job(
        self,
        *,
        kind: str,
        model: str,
        endpoint_id: str,
        arguments: dict[str, Any],
        estimated_cost: float | None,
        batch_id: str | None = None,
        batch_index: int | None = None,
        job_id: str | None = None,
    ) -> JobRecord:
        """Journal a job before it is submitted (status ``pending``)."""
        if kind not in JOB_KINDS:
            raise ValidationError.field("kind", f"unknown job kind {kind!r}", ", ".join(JOB_KINDS))
        now = utcnow()
        prompt = arguments.get("prompt")
        job = Job(
            id=job_id or new_id("j"),
            kind=kind,
            model=model,
            endpoint_id=endpoint_id,
            arguments=dict(arguments),
            prompt=prompt if isinstance(prompt, str) else None,
            status="pending",
            estimated_cost=estimated_cost,
            batch_id=batch_id,
            batch_index=batch_index,
            created_at=now,
            updated_at=now,
            images=[],
        )
        async with self._write() as session:
            if job_id is not None and await session.get(Job, job_id) is not None:
                raise ValidationError.field("job_id", f"a job {job_id!r} already exists")
            session.add(job)
        return job.to_record()

    async def mark_submitting(self, job_id: str) -> None:
        """Claim a pending job for its one submit; any other state refuses (no double submit)."""
        stmt = (
            update(Job)
            .where(Job.id == job_id, Job.status == "pending")
            .values(status="submitting", updated_at=utcnow())
        )
        async with self._write() as session:
            if rowcount(await session.execute(stmt)) == 1:
                return
            status = await session.scalar(select(Job.status).where(Job.id == job_id))
        if status is None:
            raise no_job(job_id)
        raise StoreError(f"job {job_id} is {status}, not pending; it will not be submitted again")

    async def set_submitted(
        self, job_id: str, *, request_id: str, status_url: str, response_url: str, cancel_url: str
    ) -> None:
        """Record Fal's request id and URLs the moment submit returns.

        The request id is always kept, even if another process gave up on the job meanwhile
        (marked it ``unknown``): knowing it is what lets the job be reattached instead of paid
        for again.
        """
        now = utcnow()
        status = case(
            (Job.status.in_(("pending", "submitting", "unknown")), "submitted"),
            else_=Job.status,
        )
        stmt = (
            update(Job)
            .where(Job.id == job_id)
            .values(
                request_id=request_id,
                status_url=status_url,
                response_url=response_url,
                cancel_url=cancel_url,
                status=status,
                error=None,
                submitted_at=now,
                updated_at=now,
            )
        )
        await self._update(job_id, stmt)

    async def set_status(
        self, job_id: str, status: JobStatus, *, queue_position: int | None = None
    ) -> None:
        """Note progress (queued at a position, running); a finished job keeps its status."""
        _check_status(status)
        stmt = (
            update(Job)
            .where(Job.id == job_id, Job.status.not_in(_NOT_OVERWRITTEN))
            .values(status=status, queue_position=queue_position, updated_at=utcnow())
        )
        await self._update(job_id, stmt, finished_ok=True)

    async def complete_job(
        self,
        job_id: str,
        *,
        seed: int | None,
        cost_usd: float | None,
        billable_units: float | None,
        timings: dict[str, Any] | None,
        output: dict[str, Any],
        images: list[NewImage],
    ) -> None:
        """Mark a job completed and record its images, in one transaction.

        Completing a job twice (two processes following it) keeps the first record.
        """
        now = utcnow()
        async with self._write() as session:
            query = select(Job.status).where(Job.id == job_id).with_for_update()
            current = await session.scalar(query)
            if current is None:
                raise no_job(job_id)
            if current == "completed":
                return
            await session.execute(
                update(Job)
                .where(Job.id == job_id)
                .values(
                    status="completed",
                    seed=str(seed) if seed is not None else None,
                    cost_usd=cost_usd,
                    billable_units=billable_units,
                    timings=timings,
                    output=output,
                    error=None,
                    error_type=None,
                    queue_position=None,
                    completed_at=now,
                    updated_at=now,
                )
            )
            session.add_all(_image_row(job_id, image, now) for image in images)

    async def fail_job(
        self,
        job_id: str,
        *,
        error: str,
        error_type: str | None = None,
        status: JobStatus = "failed",
    ) -> None:
        """End a job with an error: ``failed``, ``cancelled`` or ``unknown`` (never re-sent).

        A completed job stays completed: its images are on disk and paid for.
        """
        if status not in _FAIL_STATUSES:
            raise ValidationError.field("status", f"{status!r}", ", ".join(_FAIL_STATUSES))
        now = utcnow()
        stmt = (
            update(Job)
            .where(Job.id == job_id, Job.status != "completed")
            .values(
                status=status,
                error=error,
                error_type=error_type,
                queue_position=None,
                completed_at=now,
                updated_at=now,
            )
        )
        await self._update(job_id, stmt, finished_ok=True)

    async def _update(self, job_id: str, stmt: Any, *, finished_ok: bool = False) -> None:
        """Run an UPDATE of one job; NotFoundError if the job does not exist."""
        async with self._write() as session:
            if rowcount(await session.execute(stmt)) > 0:
                return
            exists = await session.scalar(select(Job.id).where(Job.id == job_id))
        if exists is None or not finished_ok:
            raise no_job(job_id)

    # ---- reading ----

    async def get_job(self, job_id: str) -> JobRecord | None:
        """A job by id, by Fal request id, or by a unique prefix of its id."""
        ref = (job_id or "").strip()
        if not ref:
            return None
        async with self._read() as session:
            exact = select(Job).where(or_(Job.id == ref, Job.request_id == ref)).limit(1)
            job = await session.scalar(exact)
            if job is None:
                like = select(Job).where(Job.id.startswith(ref, autoescape=True)).limit(2)
                found = list(await session.scalars(like))
                if len(found) > 1:
                    raise ValidationError.field(
                        "job_id", f"{ref!r} matches several jobs", "more characters of the id"
                    )
                job = found[0] if found else None
            return job.to_record() if job else None

    async def list_jobs(
        self,
        *,
        search: str | None = None,
        limit: int = 20,
        status: str | None = None,
        kind: str | None = None,
        batch_id: str | None = None,
    ) -> list[JobRecord]:
        """Jobs newest first; ``search`` matches prompt, model, id or request id (any case)."""
        if limit < 1:
            raise ValidationError.field("limit", f"{limit}", "1 or more")
        query = select(Job).where(*_filters(status, kind, batch_id))
        if search and search.strip():
            term = search.strip().lower()
            columns = (Job.prompt, Job.model, Job.id, Job.request_id)
            query = query.where(
                or_(*(func.lower(c).contains(term, autoescape=True) for c in columns))
            )
        query = query.order_by(Job.created_at.desc(), Job.id.desc()).limit(limit)
        return await self._jobs(query)

    async def unfinished_jobs(self, *, kind: str | None = None) -> list[JobRecord]:
        """Jobs a crash or Ctrl-C left behind (pending to running), oldest first."""
        query = select(Job).where(Job.status.in_(UNFINISHED), *_filters(None, kind, None))
        return await self._jobs(query.order_by(Job.created_at, Job.id))

    async def batch_jobs(self, batch_id: str) -> list[JobRecord]:
        """A batch's jobs in batch order."""
        query = select(Job).where(Job.batch_id == batch_id)
        return await self._jobs(query.order_by(Job.batch_index.asc().nulls_last(), Job.id))

    async def total_spend(self, *, batch_id: str | None = None) -> float:
        """The sum of recorded costs in USD (jobs without a recorded cost count as 0).

        Rounded to a billionth of a dollar, so float noise never makes a batch look over budget.
        """
        query = select(func.coalesce(func.sum(Job.cost_usd), 0.0)).where(
            *_filters(None, None, batch_id)
        )
        async with self._read() as session:
            return round(float(await session.scalar(query) or 0.0), 9)

    async def _jobs(self, query: Any) -> list[JobRecord]:
        async with self._read() as session:
            return [job.to_record() for job in await session.scalars(query)]


def _check_status(status: str) -> None:
    if status not in JOB_STATUSES:
        raise ValidationError.field("status", f"unknown status {status!r}", ", ".join(JOB_STATUSES))


def _filters(
    status: str | None, kind: str | None, batch_id: str | None
) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    if status is not None:
        _check_status(status)
        conditions.append(Job.status == status)
    if kind is not None:
        conditions.append(Job.kind == kind)
    if batch_id is not None:
        conditions.append(Job.batch_id == batch_id)
    return conditions


def _image_row(job_id: str, image: NewImage, now: Any) -> Image:
    return Image(
        id=new_id("i"),
        job_id=job_id,
        index=image.index,
        url=image.url,
        local_path=image.local_path,
        sha256=image.sha256,
        size_bytes=image.size_bytes,
        width=image.width,
        height=image.height,
        content_type=image.content_type,
        nsfw=image.nsfw,
        created_at=now,
    )

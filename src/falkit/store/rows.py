"""Rows to records, and the small queries both writes and reads use to build job records.

A job's images are looked up only when the job is ``completed`` (the only state that has any,
see models.py), in one query for many jobs, so reading or updating a job that is still on its
way costs a single statement.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import bindparam, select

from falkit.store.models import batches, images, jobs, loras
from falkit.store.records import BatchRecord, ImageRecord, JobRecord, LoraRecord

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, Row

IN_CHUNK = 500  # ids per IN (...) list, well under both databases' parameter limits

_IMAGES_OF = (
    select(images)
    .where(images.c.job_id.in_(bindparam("b_ids", expanding=True)))
    .order_by(images.c.job_id, images.c.image_index)
)
_JOBS_BY_ID = select(jobs).where(jobs.c.id.in_(bindparam("b_ids", expanding=True)))


def job_record(row: Row[Any], found: Sequence[ImageRecord] = ()) -> JobRecord:
    """A job row (all columns, in table order: ``select(jobs)`` or RETURNING) as a record.

    Unpacked by position, the cheapest way through a row: this runs once per journal write.
    """
    (
        id_,
        kind,
        model,
        endpoint_id,
        arguments,
        _prompt,
        status,
        request_id,
        status_url,
        response_url,
        cancel_url,
        seed,
        estimated_cost,
        cost_usd,
        billable_units,
        timings,
        output,
        error,
        error_type,
        queue_position,
        batch_id,
        batch_index,
        created_at,
        submitted_at,
        completed_at,
        updated_at,
        submitter,
        starred,
    ) = cast("tuple[Any, ...]", row)
    return JobRecord(
        id=id_,
        kind=kind,
        model=model,
        endpoint_id=endpoint_id,
        arguments=dict(arguments or {}),
        status=status,
        request_id=request_id,
        status_url=status_url,
        response_url=response_url,
        cancel_url=cancel_url,
        seed=int(seed) if seed is not None else None,
        estimated_cost=estimated_cost,
        cost_usd=cost_usd,
        billable_units=billable_units,
        timings=timings,
        output=output,
        error=error,
        error_type=error_type,
        queue_position=queue_position,
        batch_id=batch_id,
        batch_index=batch_index,
        created_at=created_at,
        submitted_at=submitted_at,
        completed_at=completed_at,
        updated_at=updated_at,
        images=tuple(found),
        submitter=submitter,
        starred=bool(starred),
    )


def image_record(row: Row[Any]) -> ImageRecord:
    return ImageRecord(
        id=row.id,
        job_id=row.job_id,
        index=row.image_index,
        url=row.url,
        local_path=row.local_path,
        sha256=row.sha256,
        size_bytes=row.size_bytes,
        width=row.width,
        height=row.height,
        content_type=row.content_type,
        nsfw=row.nsfw,
        created_at=row.created_at,
    )


def lora_record(row: Row[Any]) -> LoraRecord:
    return LoraRecord(
        name=row.name,
        url=row.url,
        trigger_word=row.trigger_word,
        config_url=row.config_url,
        local_path=row.local_path,
        job_id=row.job_id,
        params=dict(row.params or {}),
        created_at=row.created_at,
    )


def batch_record(row: Row[Any]) -> BatchRecord:
    return BatchRecord(
        id=row.id,
        spec=dict(row.spec or {}),
        out_dir=row.out_dir,
        budget_usd=row.budget_usd,
        total_jobs=row.total_jobs,
        created_at=row.created_at,
    )


def job_records(conn: Connection, rows: Iterable[Row[Any]]) -> list[JobRecord]:
    """Records for job rows, in their order, with the images of the completed ones."""
    rows = list(rows)
    done = [row.id for row in rows if row.status == "completed"]
    found = images_of(conn, done) if done else {}
    return [job_record(row, found.get(row.id, ())) for row in rows]


def one_job(conn: Connection, row: Row[Any]) -> JobRecord:
    (record,) = job_records(conn, [row])
    return record


def images_of(conn: Connection, job_ids: Sequence[str]) -> dict[str, list[ImageRecord]]:
    """The images of these jobs, by job id, in image order."""
    found: dict[str, list[ImageRecord]] = {}
    for start in range(0, len(job_ids), IN_CHUNK):
        chunk = list(job_ids[start : start + IN_CHUNK])
        for row in conn.execute(_IMAGES_OF, {"b_ids": chunk}):
            found.setdefault(row.job_id, []).append(image_record(row))
    return found


def jobs_by_id(conn: Connection, job_ids: Sequence[str]) -> dict[str, JobRecord]:
    """The stored records of these jobs (missing ids are left out), by id."""
    rows: list[Row[Any]] = []
    for start in range(0, len(job_ids), IN_CHUNK):
        rows.extend(conn.execute(_JOBS_BY_ID, {"b_ids": list(job_ids[start : start + IN_CHUNK])}))
    return {record.id: record for record in job_records(conn, rows)}


def job_by_id(conn: Connection, job_id: str) -> JobRecord | None:
    return jobs_by_id(conn, [job_id]).get(job_id)


def lora_row(conn: Connection, name: str) -> LoraRecord | None:
    row = conn.execute(select(loras).where(loras.c.name == name)).first()
    return lora_record(row) if row is not None else None


def batch_row(conn: Connection, batch_id: str) -> BatchRecord | None:
    row = conn.execute(select(batches).where(batches.c.id == batch_id)).first()
    return batch_record(row) if row is not None else None

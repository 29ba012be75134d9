"""The journal's write operations: sync functions over a Core connection, run by the writer.

Each is one UPDATE … RETURNING (or INSERT … RETURNING) whose returned row becomes the caller's
record, so a write never reads its row back. Each keeps writer.py's contract: it either
succeeds or raises a FalkitError before changing anything (the follow-up SELECT that explains
a refused compare-and-set only reads). Statements are built once, at import, with named
parameters, so running one costs no SQL construction.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    JSON,
    Float,
    String,
    bindparam,
    case,
    delete,
    func,
    insert,
    literal_column,
    select,
    update,
)

from falkit.errors import StoreError, ValidationError
from falkit.store import rows
from falkit.store.base import no_job
from falkit.store.ids import new_id
from falkit.store.models import UTCDateTime, images, jobs
from falkit.store.records import ImageRecord, JobRecord, NewImage

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

NOT_OVERWRITTEN = ("completed", "failed", "cancelled")  # set_status leaves these alone
_J = jobs.c


def _among(statuses: tuple[str, ...]) -> Any:
    """``status IN ('a', 'b')`` written into the SQL: no per-call expansion of a bound list."""
    return _J.status.in_([literal_column(f"'{status}'") for status in statuses])


def _id() -> Any:
    return bindparam("b_id", type_=String())


def _now() -> Any:
    return bindparam("b_now", type_=UTCDateTime())


_MARK_SUBMITTING = (
    update(jobs)
    .where(_J.id == _id(), _J.status == "pending")
    .values(
        status="submitting", submitter=bindparam("b_submitter", type_=String()), updated_at=_now()
    )
    .returning(*jobs.c)
)
_RELEASE = (
    update(jobs)
    .where(_J.id == _id(), _J.status == "submitting")
    .values(status="pending", submitter=None, updated_at=_now())
    .returning(*jobs.c)
)
_SUBMITTED = (
    update(jobs)
    .where(_J.id == _id())
    .values(
        request_id=bindparam("b_request_id", type_=String()),
        status_url=bindparam("b_status_url", type_=String()),
        response_url=bindparam("b_response_url", type_=String()),
        cancel_url=bindparam("b_cancel_url", type_=String()),
        status=case((_among(("pending", "submitting", "unknown")), "submitted"), else_=_J.status),
        error=None,
        submitted_at=_now(),
        updated_at=_now(),
    )
    .returning(*jobs.c)
)
_STATUS = (
    update(jobs)
    .where(_J.id == _id(), ~_among(NOT_OVERWRITTEN))
    .values(status=bindparam("b_status", type_=String()), updated_at=_now())
    .returning(*jobs.c)
)
_COMPLETE = (
    update(jobs)
    .where(_J.id == _id(), _J.status != "completed")
    .values(
        status="completed",
        seed=bindparam("b_seed", type_=String()),
        cost_usd=bindparam("b_cost", type_=Float()),
        billable_units=bindparam("b_units", type_=Float()),
        timings=bindparam("b_timings", type_=JSON()),
        output=bindparam("b_output", type_=JSON()),
        error=None,
        error_type=None,
        queue_position=None,
        completed_at=_now(),
        updated_at=_now(),
    )
    .returning(*jobs.c)
)
_FAIL = (
    update(jobs)
    .where(_J.id == _id(), _J.status != "completed")
    .values(
        status=bindparam("b_status", type_=String()),
        error=bindparam("b_error", type_=String()),
        error_type=bindparam("b_error_type", type_=String()),
        cost_usd=func.coalesce(bindparam("b_cost", type_=Float()), _J.cost_usd),
        queue_position=None,
        completed_at=_now(),
        updated_at=_now(),
    )
    .returning(*jobs.c)
)
_STATUS_OF = select(_J.status).where(_J.id == _id())
_INSERT_IMAGES = insert(images)


def insert_jobs(conn: Connection, values: list[dict[str, Any]], strict: bool) -> list[JobRecord]:
    """Journal new jobs (``pending``), in one multi-row INSERT … ON CONFLICT DO NOTHING.

    An id that exists already is returned as stored (a rerun of a bulk create), or refused
    when ``strict`` (``create_job`` with an explicit id).
    """
    stmt = _insert_jobs(conn.dialect.name)
    created = {row.id: rows.job_record(row) for row in conn.execute(stmt, values)}
    missing = [v["id"] for v in values if v["id"] not in created]
    if missing and strict:
        raise ValidationError.field("job_id", f"a job {missing[0]!r} already exists")
    if missing:
        created.update(rows.jobs_by_id(conn, missing))
    return [created[v["id"]] for v in values]


@functools.cache
def _insert_jobs(dialect: str) -> Any:
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        stmt: Any = pg_insert(jobs)
    else:
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        stmt = sqlite_insert(jobs)
    return stmt.on_conflict_do_nothing(index_elements=["id"]).returning(*jobs.c)


def mark_submitting(
    conn: Connection, job_id: str, submitter: str | None, now: dt.datetime
) -> JobRecord:
    """pending → submitting (compare-and-set): the one claim on a job's submit."""
    params = {"b_id": job_id, "b_submitter": submitter, "b_now": now}
    row = conn.execute(_MARK_SUBMITTING, params).first()
    if row is not None:
        return rows.job_record(row)  # a pending job has no images
    status = conn.execute(_STATUS_OF, {"b_id": job_id}).scalar()
    if status is None:
        raise no_job(job_id)
    raise StoreError(f"job {job_id} is {status}, not pending; it will not be submitted again")


def release_submitting(conn: Connection, job_id: str, now: dt.datetime) -> JobRecord:
    """submitting → pending (the submit certainly never reached Fal); else the stored job."""
    row = conn.execute(_RELEASE, {"b_id": job_id, "b_now": now}).first()
    return rows.job_record(row) if row is not None else _stored(conn, job_id)


def set_submitted(
    conn: Connection, job_id: str, urls: dict[str, str], now: dt.datetime
) -> JobRecord:
    """Record the request id and URLs (always kept, whatever the status)."""
    row = conn.execute(_SUBMITTED, {"b_id": job_id, "b_now": now, **urls}).first()
    if row is None:
        raise no_job(job_id)
    return rows.one_job(conn, row)


def set_status(conn: Connection, job_id: str, status: str, now: dt.datetime) -> JobRecord | None:
    """A new status for an unfinished job; None when the job had finished (left alone)."""
    row = conn.execute(_STATUS, {"b_id": job_id, "b_status": status, "b_now": now}).first()
    if row is not None:
        return rows.job_record(row)  # not completed, so no images
    if conn.execute(_STATUS_OF, {"b_id": job_id}).scalar() is None:
        raise no_job(job_id)
    return None


def complete_job(
    conn: Connection,
    job_id: str,
    result: dict[str, Any],
    found: Sequence[NewImage],
    now: dt.datetime,
) -> JobRecord:
    """completed, with its output and images; a job completed already is returned as stored."""
    row = conn.execute(_COMPLETE, {"b_id": job_id, "b_now": now, **result}).first()
    if row is None:
        return _stored(conn, job_id)
    values = [_image_values(job_id, image, now) for image in found]
    if values:
        conn.execute(_INSERT_IMAGES, values)
    records = sorted((_image_record(v) for v in values), key=lambda image: image.index)
    return rows.job_record(row, records)


def fail_job(conn: Connection, job_id: str, failure: dict[str, Any], now: dt.datetime) -> JobRecord:
    """failed, cancelled or unknown with its error; a completed job is returned as stored."""
    row = conn.execute(_FAIL, {"b_id": job_id, "b_now": now, **failure}).first()
    return rows.job_record(row) if row is not None else _stored(conn, job_id)


def _stored(conn: Connection, job_id: str) -> JobRecord:
    record = rows.job_by_id(conn, job_id)
    if record is None:
        raise no_job(job_id)
    return record


def _image_values(job_id: str, image: NewImage, now: dt.datetime) -> dict[str, Any]:
    return {
        "id": new_id("i"),
        "job_id": job_id,
        "image_index": image.index,
        "url": image.url,
        "local_path": image.local_path,
        "sha256": image.sha256,
        "size_bytes": image.size_bytes,
        "width": image.width,
        "height": image.height,
        "content_type": image.content_type,
        "nsfw": image.nsfw,
        "created_at": now,
    }


def _image_record(values: dict[str, Any]) -> ImageRecord:
    return ImageRecord(
        id=values["id"],
        job_id=values["job_id"],
        index=values["image_index"],
        url=values["url"],
        local_path=values["local_path"],
        sha256=values["sha256"],
        size_bytes=values["size_bytes"],
        width=values["width"],
        height=values["height"],
        content_type=values["content_type"],
        nsfw=values["nsfw"],
        created_at=values["created_at"],
    )


# ---- reconciling unknown jobs (falkit.service.reconcile) ----

_RELEASE_UNKNOWN = (
    update(jobs)
    .where(_J.id == _id(), _J.status == "unknown", _J.request_id.is_(None))
    .values(
        status="pending",
        submitter=None,
        error=None,
        error_type=None,
        completed_at=None,
        updated_at=_now(),
    )
    .returning(*jobs.c)
)


def release_unknown(conn: Connection, job_id: str, now: dt.datetime) -> JobRecord:
    """unknown → pending (Fal's history shows the submit never arrived); else the stored job.

    Only a job without a request id: one that got its id meanwhile is reattached instead.
    """
    row = conn.execute(_RELEASE_UNKNOWN, {"b_id": job_id, "b_now": now}).first()
    return rows.job_record(row) if row is not None else _stored(conn, job_id)


# ---- the gallery: stars and deletion (the web page) ----

_STAR = update(jobs).where(_J.id == _id()).values(starred=bindparam("b_starred")).returning(*jobs.c)


def set_starred(conn: Connection, job_id: str, starred: bool) -> JobRecord:
    """Star a job or take its star away (updated_at is left alone: nothing about the run
    changed)."""
    row = conn.execute(_STAR, {"b_id": job_id, "b_starred": bool(starred)}).first()
    if row is None:
        raise no_job(job_id)
    return rows.one_job(conn, row)


def delete_jobs(conn: Connection, job_ids: list[str]) -> list[JobRecord]:
    """Delete finished jobs with their image rows; the records deleted, in the order asked.

    Checks every job before deleting any: one still on its way refuses the call.
    """
    found = rows.jobs_by_id(conn, job_ids)
    for record in found.values():
        if not record.finished:
            raise ValidationError.field(
                "job_ids", f"job {record.id} is {record.status}", "finished jobs; cancel it first"
            )
    ids = list(found)
    for start in range(0, len(ids), rows.IN_CHUNK):
        chunk = ids[start : start + rows.IN_CHUNK]
        conn.execute(delete(images).where(images.c.job_id.in_(chunk)))
        conn.execute(delete(jobs).where(_J.id.in_(chunk)))
    return [found[job_id] for job_id in job_ids if job_id in found]

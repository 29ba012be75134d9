"""Finding jobs again: sync queries over a Core connection, run on a reader's connection."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import ColumnElement, Text, cast, func, or_, select

from falkit.errors import ValidationError
from falkit.store import rows
from falkit.store.models import jobs
from falkit.store.records import JOB_STATUSES, UNFINISHED, JobRecord

if TYPE_CHECKING:
    from sqlalchemy import Select
    from sqlalchemy.engine import Connection

_J = jobs.c


def find_job(conn: Connection, ref: str) -> JobRecord | None:
    """A job by id, by Fal request id, or by a unique prefix of its id."""
    exact = select(jobs).where(or_(_J.id == ref, _J.request_id == ref)).limit(1)
    row = conn.execute(exact).first()
    if row is None:
        like = select(jobs).where(_J.id.startswith(ref, autoescape=True)).limit(_SHOWN + 1)
        found = list(conn.execute(like.order_by(_J.id.desc())))
        if len(found) > 1:
            names = ", ".join(row.id for row in found[:_SHOWN])
            more = ", …" if len(found) > _SHOWN else ""
            raise ValidationError.field(
                "job_id", f"{ref!r} matches several jobs: {names}{more}", "a longer prefix"
            )
        row = found[0] if found else None
    return rows.one_job(conn, row) if row is not None else None


_SHOWN = 5  # candidates named when a prefix is ambiguous


def id_prefixes(conn: Connection, ids: list[str], minimum: int) -> dict[str, str]:
    """The shortest prefix (at least ``minimum`` characters) that names each job alone."""
    out = {}
    for job_id in ids:
        below = select(_J.id).where(_J.id < job_id).order_by(_J.id.desc()).limit(1)
        above = select(_J.id).where(_J.id > job_id).order_by(_J.id.asc()).limit(1)
        shared = max(_shared(job_id, conn.execute(q).scalar()) for q in (below, above))
        out[job_id] = job_id[: max(minimum, shared + 1)]
    return out


def _shared(a: str, b: str | None) -> int:
    if b is None:
        return 0
    return next(
        (i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b))
    )


def list_jobs(conn: Connection, query: Select[Any]) -> list[JobRecord]:
    return rows.job_records(conn, conn.execute(query))


def total_spend(conn: Connection, batch_id: str | None) -> float:
    query = select(func.coalesce(func.sum(_J.cost_usd), 0.0)).where(*filters(batch_id=batch_id))
    return round(float(conn.execute(query).scalar() or 0.0), 9)


def search_query(
    *,
    search: str | None,
    limit: int,
    status: str | None,
    kind: str | None,
    batch_id: str | None,
    model: str | None,
    since: dt.datetime | None,
    extra: Extra | None = None,
) -> Select[Any]:
    """Newest first; ``search`` matches prompt, model, id or request id (any case)."""
    if limit < 1:
        raise ValidationError.field("limit", f"{limit}", "1 or more")
    extra = extra or Extra()
    query = select(jobs).where(
        *filters(status=status, kind=kind, batch_id=batch_id, model=model, since=since),
        *extra.conditions(),
    )
    if search and search.strip():
        term = search.strip().lower()
        columns = (_J.prompt, _J.model, _J.id, _J.request_id)
        query = query.where(or_(*(func.lower(c).contains(term, autoescape=True) for c in columns)))
    query = query.order_by(_J.created_at.desc(), _J.id.desc()).limit(limit)
    return query.offset(extra.offset) if extra.offset else query


@dataclass(frozen=True)
class Extra:
    """The gallery's filters: created before ``until``, starred or not, naming a LoRA."""

    until: dt.datetime | None = None
    starred: bool | None = None
    lora: str | None = None
    offset: int = 0

    def conditions(self) -> list[ColumnElement[bool]]:
        if self.offset < 0:
            raise ValidationError.field("offset", f"{self.offset}", "0 or more")
        out: list[ColumnElement[bool]] = []
        if self.until is not None:
            out.append(_J.created_at < self.until)
        if self.starred is not None:
            out.append(_J.starred.is_(self.starred))
        if self.lora:
            out.append(cast(_J.arguments, Text).contains(self.lora, autoescape=True))
        return out


def unfinished_query(kind: str | None) -> Select[Any]:
    """Pending to running, oldest first: what a crash or Ctrl-C left behind."""
    query = select(jobs).where(_J.status.in_(UNFINISHED), *filters(kind=kind))
    return query.order_by(_J.created_at, _J.id)


def batch_query(batch_id: str) -> Select[Any]:
    """A batch's jobs in batch order."""
    query = select(jobs).where(_J.batch_id == batch_id)
    return query.order_by(_J.batch_index.asc().nulls_last(), _J.id)


def check_status(status: str) -> None:
    if status not in JOB_STATUSES:
        raise ValidationError.field("status", f"unknown status {status!r}", ", ".join(JOB_STATUSES))


def filters(
    *,
    status: str | None = None,
    kind: str | None = None,
    batch_id: str | None = None,
    model: str | None = None,
    since: dt.datetime | None = None,
) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    if status is not None:
        check_status(status)
        conditions.append(_J.status == status)
    if kind is not None:
        conditions.append(_J.kind == kind)
    if batch_id is not None:
        conditions.append(_J.batch_id == batch_id)
    if model is not None:
        conditions.append(_J.model == model)
    if since is not None:
        conditions.append(_J.created_at >= since)
    return conditions

"""Jobs: read one, list and search them, cancel one.

Reads never start anything: a job is shown from the journal, with its live state when this
server's engine runs it.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Annotated, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BaseModel, Field

from falkit.store.records import JobStatus
from falkit.web.errors import responses
from falkit.web.security import Authorized
from falkit.web.state import WebState, web_state
from falkit.web.views import JobOut, job_view, preparing_view

if TYPE_CHECKING:
    from falkit.service import FalService
    from falkit.service.handle import JobHandle

router = APIRouter(prefix="/api/v1", tags=["jobs"], dependencies=[Authorized])
State = Annotated[WebState, Depends(web_state)]
JobId = Annotated[
    str, Path(min_length=1, max_length=200, description="Job id, prefix or request id")
]
MAX_OFFSET = 10_000


async def running_handle(service: FalService, job_id: str) -> JobHandle | None:
    """The engine's handle on a job it runs or ran lately (None without a key, or not here)."""
    if not service.enabled:
        return None
    engine = await service.engine()
    return engine.get(job_id)


async def lora_needle(service: FalService, lora: str | None) -> str | None:
    """What a job's arguments hold for a LoRA filter: a library LoRA's weights URL, or the
    text given (a URL)."""
    if not lora or not lora.strip():
        return None
    record = await (await service.store()).get_lora(lora.strip())
    return record.url if record is not None else lora.strip()


class JobList(BaseModel):
    jobs: list[JobOut]
    next_offset: int | None = Field(description="Offset of the next page, None on the last")


class CancelOut(BaseModel):
    job_id: str
    outcome: str = Field(description="Fal's word: OK, CANCELLATION_REQUESTED, ALREADY_…")
    job: JobOut


@router.get("/jobs", response_model=JobList, responses=responses(401, 403, 422))
async def list_jobs(
    request: Request,
    state: State,
    search: Annotated[str | None, Query(max_length=500, description="Prompt, model or id")] = None,
    status: Annotated[JobStatus | None, Query()] = None,
    kind: Annotated[Literal["image", "training"] | None, Query()] = None,
    model: Annotated[str | None, Query(max_length=200)] = None,
    batch_id: Annotated[str | None, Query(max_length=200)] = None,
    starred: Annotated[bool | None, Query(description="Only starred (or unstarred) jobs")] = None,
    lora: Annotated[str | None, Query(max_length=4096, description="LoRA name or URL")] = None,
    since: Annotated[dt.datetime | None, Query(description="Created at or after")] = None,
    until: Annotated[dt.datetime | None, Query(description="Created before")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 20,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
) -> JobList:
    """Jobs newest first, filtered, a page at a time."""
    service = state.service
    records = await service.list_jobs(
        search=search, limit=offset + limit + 1, status=status, kind=kind, model=model,
        batch_id=batch_id, starred=starred, lora=await lora_needle(service, lora),
        since=since, until=until,
    )  # fmt: skip
    page = records[offset : offset + limit]
    more = len(records) > offset + limit
    jobs = [
        JobOut.model_validate(
            job_view(request, state.images_root, r, await running_handle(service, r.id))
        )
        for r in page
    ]
    return JobList(jobs=jobs, next_offset=offset + limit if more else None)


@router.get("/jobs/{job_id}", response_model=JobOut, responses=responses(401, 403, 404, 422))
async def get_job(job_id: JobId, request: Request, state: State) -> JobOut:
    """One job; completed, it has the keys of `falkit generate --json`."""
    handle = await running_handle(state.service, job_id)
    if handle is not None and handle.record is None:  # uploads under way: not journaled yet
        return JobOut.model_validate(preparing_view(request, handle))
    record = await state.service.get_job(job_id)
    handle = handle or await running_handle(state.service, record.id)
    if handle is not None and handle.record is not None and not handle.done:
        record = handle.record if handle.record.updated_at >= record.updated_at else record
    return JobOut.model_validate(job_view(request, state.images_root, record, handle))


@router.post(
    "/jobs/{job_id}/cancel",
    response_model=CancelOut,
    responses=responses(401, 403, 404, 409, 422, 502, 503),
)
async def cancel_job(job_id: JobId, request: Request, state: State) -> CancelOut:
    """Cancel a job (at Fal if it was sent); a job already ended answers ALREADY_<STATUS>."""
    service = state.service
    handle = await running_handle(service, job_id)
    if handle is not None and handle.record is None:  # still preparing: never sent
        outcome = await handle.cancel()
        view = preparing_view(request, handle)
        return CancelOut(job_id=handle.job_id, outcome=outcome, job=JobOut.model_validate(view))
    record = await service.get_job(job_id)
    outcome = await service.cancel_job(record.id)
    handle = await running_handle(service, record.id)
    if handle is not None and not handle.done:
        await handle.wait_while(("submitting", "queued", "running"), timeout=5.0)
    record = await service.get_job(record.id)
    view = job_view(request, state.images_root, record, handle)
    return CancelOut(job_id=record.id, outcome=outcome, job=JobOut.model_validate(view))

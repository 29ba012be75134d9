"""The library as a gallery: star a job, delete jobs (rows and image files), a zip of images.

Images are read and removed through the library's storage (FALKIT_HOME/images, or the
FALKIT_STORAGE_URL bucket), so a zip or a delete works on any replica of a cluster. Only images
inside that storage are touched: a path recorded elsewhere is left alone. A job still on its
way is a 409 (cancel it first). A job of a batch deleted here is generated again by
`falkit batch resume`.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import zipfile
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import FileResponse
from pydantic import BaseModel, Field
from starlette.background import BackgroundTask

from falkit.errors import LookupFailedError, ValidationError
from falkit.web.api_jobs import JobId
from falkit.web.errors import responses
from falkit.web.security import Authorized
from falkit.web.state import WebState, web_state
from falkit.web.views import JobOut, job_view

if TYPE_CHECKING:
    from falkit.storage import ImageStorage
    from falkit.store import JobRecord

router = APIRouter(prefix="/api/v1", tags=["library"], dependencies=[Authorized])
State = Annotated[WebState, Depends(web_state)]
MAX_JOBS = 200
ZIP_DOC: dict[int | str, dict[str, Any]] = {
    200: {"description": "A zip of the images", "content": {"application/zip": {}}}
}


class StarBody(BaseModel):
    starred: bool = Field(True, description="True to star the job, False to take the star away")


class DeleteBody(BaseModel):
    job_ids: list[Annotated[str, Field(min_length=1, max_length=200)]] = Field(
        min_length=1, max_length=MAX_JOBS, description="Full job ids"
    )


class DeletedOut(BaseModel):
    deleted: list[str] = Field(description="The jobs deleted (ids not in the library are left out)")
    files_removed: int = Field(description="Image files removed from the library")


@router.post(
    "/jobs/{job_id}/star", response_model=JobOut, responses=responses(401, 403, 404, 413, 422)
)
async def star_job(job_id: JobId, body: StarBody, request: Request, state: State) -> JobOut:
    """Star a job (or take its star away): the gallery's mark, a filter of GET /jobs."""
    record = await state.service.get_job(job_id)
    store = await state.service.store()
    record = await store.set_starred(record.id, body.starred)
    return JobOut.model_validate(job_view(request, state.images_root, record))


@router.delete(
    "/jobs/{job_id}", response_model=DeletedOut, responses=responses(401, 403, 404, 409, 422)
)
async def delete_job(job_id: JobId, state: State) -> DeletedOut:
    """Delete a finished job: its record and its image files in the library."""
    record = await state.service.get_job(job_id)
    return await delete_records(state, [record.id])


@router.post(
    "/jobs/delete", response_model=DeletedOut, responses=responses(401, 403, 409, 413, 422)
)
async def delete_jobs(body: DeleteBody, state: State) -> DeletedOut:
    """Delete several finished jobs at once (the gallery's multi-select)."""
    return await delete_records(state, body.job_ids)


async def delete_records(state: WebState, job_ids: list[str]) -> DeletedOut:
    """Delete finished jobs and their files inside the library; 409 if one is unfinished."""
    exact = await exact_jobs(state, job_ids)
    store = await state.service.store()
    busy = next((r for r in exact if not r.finished), None)
    if busy is not None:
        raise HTTPException(409, f"job {busy.id} is {busy.status}: cancel it first")
    deleted = await store.delete_jobs([r.id for r in exact])
    storage = state.service.storage()
    removed = [await storage.delete(key) for key in stored_keys(storage, deleted)]
    return DeletedOut(deleted=[r.id for r in deleted], files_removed=sum(removed))


async def exact_jobs(state: WebState, job_ids: list[str]) -> list[JobRecord]:
    """The jobs with exactly these ids (no prefixes, no request ids), in the order given."""
    store = await state.service.store()
    out = []
    for job_id in dict.fromkeys(job_ids):
        try:
            record = await store.get_job(job_id)
        except ValidationError:  # a prefix of several jobs
            continue
        if record is not None and record.id == job_id:
            out.append(record)
    return out


def stored_keys(storage: ImageStorage, records: list[JobRecord]) -> list[str]:
    """The storage keys of these jobs' images (images kept elsewhere are left out)."""
    keys = (storage.key_of(image.local_path) for record in records for image in record.images)
    return list(dict.fromkeys(key for key in keys if key))


@router.get("/archive", responses={**ZIP_DOC, **responses(401, 403, 404, 422)})
async def archive(
    state: State,
    job_id: Annotated[
        list[Annotated[str, Query(min_length=1, max_length=200)]],
        Query(min_length=1, max_length=MAX_JOBS, description="Job ids (repeat the parameter)"),
    ],
) -> FileResponse:
    """The images of these jobs as one zip (stored, not recompressed); 404 if none has any."""
    records = await exact_jobs(state, job_id)
    storage = state.service.storage()
    target = await write_zip(storage, stored_keys(storage, records))
    return FileResponse(
        target, media_type="application/zip", filename="falkit-images.zip",
        background=BackgroundTask(os.unlink, target),
    )  # fmt: skip


async def write_zip(storage: ImageStorage, keys: list[str]) -> str:
    """A temporary zip of the images at ``keys`` (named by key; one image in memory at a time);
    its path. LookupFailedError (404) when none of them is there."""
    fd, name = tempfile.mkstemp(prefix="falkit-", suffix=".zip")
    written = 0
    try:
        with os.fdopen(fd, "wb") as out, zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as zipped:
            for key in keys:
                try:
                    data = await storage.get(key)
                except LookupFailedError:
                    continue
                await asyncio.to_thread(zipped.writestr, key, data)
                written += 1
        if not written:
            raise LookupFailedError("none of these jobs has an image in the library")
    except BaseException:
        os.unlink(name)
        raise
    return name

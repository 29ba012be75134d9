"""The library as a gallery: star a job, delete jobs (rows and image files), a zip of images.

Deleting removes a finished job's rows and its image files, and only files inside
FALKIT_HOME/images (a path recorded elsewhere is left alone); a job still on its way is a 409
(cancel it first). A job of a batch deleted here is generated again by `falkit batch resume`.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import zipfile
from pathlib import Path
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
    removed = await asyncio.to_thread(remove_files, state.images_root, deleted)
    return DeletedOut(deleted=[r.id for r in deleted], files_removed=removed)


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


def library_file(root: Path, local_path: str) -> Path | None:
    """``local_path`` if it is a file inside ``root`` (symlinks resolved), else None."""
    try:
        base = root.resolve(strict=True)
        path = Path(local_path).resolve(strict=True)
        path.relative_to(base)
    except (OSError, ValueError, RuntimeError):
        return None
    return path if path.is_file() else None


def remove_files(root: Path, records: list[JobRecord]) -> int:
    removed = 0
    for record in records:
        for image in record.images:
            path = library_file(root, image.local_path)
            if path is not None:
                path.unlink(missing_ok=True)
                removed += 1
    return removed


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
    files = [
        path
        for record in records
        for image in record.images
        if (path := library_file(state.images_root, image.local_path)) is not None
    ]
    if not files:
        raise LookupFailedError("none of these jobs has an image in the library")
    target = await asyncio.to_thread(write_zip, state.images_root, files)
    return FileResponse(
        target, media_type="application/zip", filename="falkit-images.zip",
        background=BackgroundTask(os.unlink, target),
    )  # fmt: skip


def write_zip(root: Path, files: list[Path]) -> str:
    """A temporary zip of ``files`` (named by their path under ``root``); its path."""
    fd, name = tempfile.mkstemp(prefix="falkit-", suffix=".zip")
    base = root.resolve()
    with os.fdopen(fd, "wb") as out, zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as archive:
        for path in dict.fromkeys(files):
            archive.write(path, path.relative_to(base).as_posix())
    return name

"""Batches: start one (prompts times sweeps, within a budget), see it job by job, its files.

``POST /api/v1/batches`` checks every job first (422 naming the prompt and field, 402 over the
spend cap), then answers 202 once the batch is journaled and running. The batch id is a hash
of its jobs, so posting the same batch again resumes it (finished jobs skipped, nothing sent
twice). ``GET /api/v1/batches/{id}`` reads the library, so it also shows batches run by the CLI.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi import Path as PathParam
from fastapi.responses import FileResponse
from pydantic import BaseModel, ConfigDict, Field

from falkit.errors import LookupFailedError
from falkit.web.errors import responses
from falkit.web.files import REPORT_TYPES, file_response, inside
from falkit.web.security import Authorized
from falkit.web.sse import STREAM_DOC, event_stream, resume_point
from falkit.web.state import WebState, web_state
from falkit.web.views import base_url, served_images

router = APIRouter(prefix="/api/v1", tags=["batches"], dependencies=[Authorized])
State = Annotated[WebState, Depends(web_state)]
BatchId = Annotated[str, PathParam(min_length=1, max_length=100)]
MAX_PROMPTS = 10_000
Sweep = str | list[Any] | None


class BatchBody(BaseModel):
    """Like `falkit batch`: each prompt (text, or an object of generate parameters) times the
    sweeps; sweeps are lists or the CLI's text (``"1-4"``, ``"flux-schnell,flux-dev"``)."""

    model_config = ConfigDict(extra="forbid")
    prompts: list[str | dict[str, Any]] = Field(min_length=1, max_length=MAX_PROMPTS)
    seeds: str | list[int] | None = None
    models: str | list[str] | None = None
    guidance: str | list[float] | None = None
    sizes: str | list[str] | None = None
    lora_scales: str | list[float] | None = None
    defaults: dict[str, Any] | None = Field(None, description="Parameters every job gets")
    budget: float | None = Field(None, gt=0, description="USD the batch may not pass")
    concurrency: int = Field(64, ge=1, le=1000, description="Jobs at Fal at once")

    def options(self) -> dict[str, Any]:
        return self.model_dump(exclude={"prompts"}, exclude_none=True)


class BatchStarted(BaseModel):
    batch_id: str
    status: str
    total: int
    estimated_cost_usd: float | None
    links: dict[str, str]


class BatchJob(BaseModel):
    model_config = ConfigDict(extra="allow")
    index: int
    job_id: str
    status: str
    model: str
    prompt: str | None
    seed: int | None
    cost_usd: float | None
    error: str | None
    images: list[dict[str, Any]]


class BatchOut(BaseModel):
    batch_id: str
    status: str = Field(description="running (here), or done (as the library shows it)")
    total: int
    counts: dict[str, int] = Field(description="Jobs per status")
    spent_usd: float
    budget_usd: float | None
    created_at: str
    progress: dict[str, Any] | None = Field(description="The latest progress event, if running")
    jobs: list[BatchJob]
    next_offset: int | None
    files: dict[str, str] = Field(description="manifest_jsonl, manifest_csv, contact_sheet, html")
    links: dict[str, str]


def batch_links(request: Request, batch_id: str) -> dict[str, str]:
    root = f"{base_url(request)}/api/v1/batches/{quote(batch_id)}"
    return {"batch": root, "events": f"{root}/events", "files": f"{root}/files/"}


@router.post(
    "/batches", status_code=202, response_model=BatchStarted,
    responses=responses(401, 402, 403, 413, 422, 502, 503),
)  # fmt: skip
async def create_batch(
    body: BatchBody, request: Request, response: Response, state: State
) -> BatchStarted:
    """Check and start a batch (or resume the same one); answers once it runs."""
    run = await state.batches.start(list(body.prompts), body.options())
    progress = run.progress
    links = batch_links(request, run.batch_id)
    response.headers["Location"] = links["batch"]
    store = await state.service.store()
    jobs = await store.batch_jobs(run.batch_id)
    estimate = sum(j.estimated_cost or 0.0 for j in jobs) if jobs else None
    return BatchStarted(
        batch_id=run.batch_id, status="done" if run.live.done else "running",
        total=progress.total if progress else len(jobs), estimated_cost_usd=estimate, links=links,
    )  # fmt: skip


@router.get("/batches/{batch_id}", response_model=BatchOut, responses=responses(401, 403, 404, 422))
async def get_batch(
    batch_id: BatchId,
    request: Request,
    state: State,
    limit: Annotated[int, Query(ge=1, le=2000)] = 500,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> BatchOut:
    """A batch job by job (a page at a time), its progress, and its files."""
    from falkit.service.batch_jobs import latest_jobs

    store = await state.service.store()
    record = await store.get_batch(batch_id)
    if record is None:
        raise LookupFailedError(f"no batch {batch_id!r} in the library")
    latest = latest_jobs(await store.batch_jobs(record.id))
    counts: dict[str, int] = {}
    for job in latest.values():
        counts[job.status] = counts.get(job.status, 0) + 1
    page = [latest[i] for i in sorted(latest)][offset : offset + limit]
    run = state.batches.get(record.id)
    running = run is not None and not run.live.done
    progress = run.progress if run is not None else None
    folder = Path(record.out_dir) if record.out_dir else None
    return BatchOut(
        batch_id=record.id, status="running" if running else "done", total=record.total_jobs,
        counts=counts,
        spent_usd=_spent(latest.values()),
        budget_usd=record.budget_usd, created_at=record.created_at.isoformat(),
        progress=progress.to_json() if progress else None,
        jobs=[_job(request, state, job) for job in page],
        next_offset=offset + limit if offset + limit < len(latest) else None,
        files=_files(request, record.id, folder), links=batch_links(request, record.id),
    )  # fmt: skip


def _spent(jobs: Any) -> float:
    return round(sum(j.cost_usd or 0.0 for j in jobs if j.status == "completed"), 6)


def _job(request: Request, state: State, job: Any) -> BatchJob:
    images = [{"path": i.local_path, "url": i.url, "width": i.width, "height": i.height,
               "content_type": i.content_type, "sha256": i.sha256} for i in job.images]  # fmt: skip
    return BatchJob(
        index=job.batch_index or 0, job_id=job.id, status=job.status, model=job.model,
        prompt=job.prompt, seed=job.seed, cost_usd=job.cost_usd, error=job.error,
        images=served_images(request, state.images_root, images),
    )  # fmt: skip


def _files(request: Request, batch_id: str, folder: Path | None) -> dict[str, str]:
    names = {
        "manifest_jsonl": "manifest.jsonl", "manifest_csv": "manifest.csv",
        "contact_sheet": "contact_sheet.png", "html": "index.html",
    }  # fmt: skip
    if folder is None:
        return {}
    root = batch_links(request, batch_id)["files"]
    return {key: root + name for key, name in names.items() if (folder / name).is_file()}


@router.get(
    "/batches/{batch_id}/files/{path:path}",
    responses={200: {"description": "The file"}, **responses(401, 403, 404, 422)},
)
async def batch_file(batch_id: BatchId, path: str, state: State) -> FileResponse:
    """A file of the batch's folder: manifest, contact sheet, index page, images, thumbs."""
    store = await state.service.store()
    record = await store.get_batch(batch_id)
    if record is None or not record.out_dir:
        raise LookupFailedError(f"no batch {batch_id!r} in the library")
    return file_response(*inside(Path(record.out_dir), path, REPORT_TYPES))


@router.get("/batches/{batch_id}/events", responses={**STREAM_DOC, **responses(401, 403, 404, 422)})
async def batch_events(
    batch_id: BatchId,
    request: Request,
    state: State,
    after: Annotated[int | None, Query(ge=0)] = None,
) -> Response:
    """Progress of a batch running in this server, as Server-Sent Events."""
    handle = await state.batches.handle(batch_id)
    if handle is None:
        raise LookupFailedError(f"batch {batch_id!r} is not running in this server")
    last = request.headers.get("last-event-id")
    return event_stream(request, state, handle, resume_point(last, after))

"""Journaled jobs outside their first run: resume, cancel, retry, and handles on ended jobs."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING, Any

from falkit.errors import (
    FalkitError,
    JobCancelledError,
    JobFailedError,
    SubmitUncertainError,
    ValidationError,
)
from falkit.events import CancelledEvent, CompletedEvent, FailedEvent, NoteEvent
from falkit.request import PreparedJob
from falkit.service.progress import ProgressCallback, emit
from falkit.service.reconcile import MAX_JOBS, Reconciled, caught_submitting, reconcile
from falkit.service.submitter import is_alive

if TYPE_CHECKING:
    from falkit.service.core import FalService
    from falkit.service.engine import JobEngine
    from falkit.service.handle import JobHandle
    from falkit.store import JobRecord


class SubmitInProgressError(FalkitError):
    """Another live process is submitting this job right now; it is left to that process."""


def ended_handle(engine: JobEngine, job: JobRecord) -> JobHandle:
    """A handle on a job that is not running: its end as the journal tells it."""
    if job.status == "completed" and job.kind == "image":
        from falkit.service.results import GenerationResult

        result = GenerationResult.from_record(job)
        return engine.ended(job, CompletedEvent(job.id, result), result, error=False)
    if job.status == "completed":
        return engine.ended(job, CompletedEvent(job.id, None), None, error=False)
    if job.status == "cancelled":
        error: FalkitError = JobCancelledError(f"job {job.id} was cancelled")
        return engine.ended(job, CancelledEvent(job.id, False), error, error=True)
    if job.status == "submitting":
        error = SubmitInProgressError(f"job {job.id} is being submitted by {job.submitter}")
    else:
        error = JobFailedError(f"job {job.id} {job.status}: {job.error or 'no output'}")
    return engine.ended(job, FailedEvent(job.id, str(error), job.error_type), error, error=True)


async def cancel_job(service: FalService, ref: str) -> str:
    """Cancel a job: through the engine if it runs here, else at Fal and in the journal."""
    job = await service.get_job(ref)
    if job.status in ("completed", "failed", "cancelled", "unknown"):
        return f"ALREADY_{job.status.upper()}"
    engine = await service.engine()
    running = engine.get(job.id)
    if running is not None and not running.done:
        return await running.cancel()
    store = await service.store()
    if job.request_id is None:
        if job.status == "submitting" and is_alive(job.submitter) is not False:
            raise SubmitInProgressError(
                f"job {job.id} is being submitted by another process ({job.submitter}); "
                "cancel it once it is queued"
            )
        await store.fail_job(job.id, error="cancelled before submit", status="cancelled")
        return "OK"
    outcome = await service.client().cancel(engine._handle_for(job))
    if outcome in ("OK", "CANCELLATION_REQUESTED"):
        note = "" if job.status == "submitted" else "; it had started, so Fal may still bill it"
        await store.fail_job(
            job.id, error=f"cancelled by user{note}", error_type="cancelled", status="cancelled"
        )
    return outcome


async def retry_job(
    service: FalService,
    job_id: str,
    on_progress: ProgressCallback | None,
    *,
    out_dir: Path | None = None,
) -> Any:
    """A failed or cancelled image job sent again as a new job.

    An ``unknown`` job is reconciled first (Fal's request history): one that reached Fal is
    reattached and one that never did is submitted itself, so neither is paid for twice. Only
    one that stays unknown is sent as a new job, and is marked failed ("retried as …") so a
    later reconcile does not send it as well.
    """
    from falkit.service.core import follow

    old = await service.get_job(job_id)
    if old.status not in ("unknown", "failed", "cancelled"):
        raise ValidationError.field(
            "job_id", f"job {old.id} is {old.status}", "a failed, cancelled or unknown job"
        )
    if old.kind != "image":
        raise ValidationError.field(
            "job_id", f"job {old.id} is a {old.kind} job", "image jobs; train LoRAs anew"
        )
    if old.status == "unknown":
        settled = await _settled(service, old.id, on_progress)
        if settled is not None:
            engine = await service.engine()
            handle = engine.attach(settled, service.image_finisher(out_dir))
            return await follow(handle, on_progress)
    prepared = PreparedJob(old.model, old.endpoint_id, dict(old.arguments), old.estimated_cost)
    service.client()
    handle = await service.start_prepared(prepared, out_dir=out_dir)
    if old.status == "unknown":
        store = await service.store()
        await store.fail_job(old.id, error=f"{old.error}; retried as job {handle.job_id}")
    return await follow(handle, on_progress)


async def _settled(
    service: FalService, job_id: str, on_progress: ProgressCallback | None
) -> JobRecord | None:
    """The unknown job's record once reconciling placed it (found or released), else None."""
    for done in await reconcile(service, job_id=job_id):
        if done.job_id == job_id:
            await emit(on_progress, NoteEvent(job_id, done.message))
            return done.record if done.verdict != "waiting" else None
    return None


async def resume(
    service: FalService, on_progress: ProgressCallback | None, *, kind: str | None = None
) -> list[Any]:
    """Finish every unfinished job: reattach to submitted ones, submit only unsent ones.

    A job caught ``submitting`` is left alone while the process submitting it lives; one whose
    submitter died is marked ``unknown``. Every ``unknown`` job is then reconciled with Fal's
    request history (falkit.service.reconcile): found ones are reattached, ones that never
    arrived are submitted once, the rest stay unknown (reported as SubmitUncertainError). A
    batch's unsent jobs wait for `falkit batch resume`, which keeps the batch's budget.
    """
    store = await service.store()
    service.client()
    engine = await service.engine()
    outcomes: list[Any] = []
    for job in await store.unfinished_jobs(kind=kind):
        if job.status == "submitting":
            caught = await caught_submitting(store, job)
            if isinstance(caught, SubmitInProgressError):
                outcomes.append(caught)
    outcomes += await _reconciled(service, on_progress, kind)
    handles: list[JobHandle] = []
    held: set[str] = set()
    for job in await store.unfinished_jobs(kind=kind):
        if job.batch_id and job.request_id is None and job.status == "pending":
            held.add(job.batch_id)
        elif job.status != "submitting":  # a live submitter's job is left to it
            handles.append(engine.attach(job, service.finisher(job.kind)))
    for batch_id in sorted(held):
        text = f"batch {batch_id} has unsent jobs: `falkit batch resume {batch_id}`"
        await emit(on_progress, NoteEvent("", text))
    outcomes.extend(await follow_all(handles, on_progress))
    return outcomes


async def _reconciled(
    service: FalService, on_progress: ProgressCallback | None, kind: str | None
) -> list[FalkitError]:
    """Reconcile unknown jobs, each told as a note; the ones that stay unknown as errors."""
    left: list[FalkitError] = []
    for done in await reconcile(service, kind=kind):
        await emit(on_progress, NoteEvent(done.job_id, done.message))
        if done.verdict == "waiting":
            left.append(SubmitUncertainError(done.message))
    return left


async def reconcile_jobs(
    service: FalService, on_progress: ProgressCallback | None
) -> list[tuple[Reconciled, Any]]:
    """`falkit jobs reconcile`: settle every ``unknown`` job (and every ``submitting`` one
    whose submitter died), then follow the found ones to their end and submit, once, the ones
    that never arrived (a batch's wait for `falkit batch resume`). Each job's verdict comes
    with its result, the error it ended with, or None when nothing was run."""
    store = await service.store()
    service.client()
    engine = await service.engine()
    for job in await store.list_jobs(status="submitting", limit=MAX_JOBS):
        await caught_submitting(store, job)
    verdicts = await reconcile(service)
    handles: list[JobHandle | None] = []
    for done in verdicts:
        await emit(on_progress, NoteEvent(done.job_id, done.message))
        runs = done.verdict == "found" or (done.verdict == "released" and not done.record.batch_id)
        handles.append(
            engine.attach(done.record, service.finisher(done.record.kind)) if runs else None
        )
    results = await follow_all([h for h in handles if h is not None], on_progress)
    ran = iter(results)
    return [
        (done, next(ran) if h is not None else None)
        for done, h in zip(verdicts, handles, strict=True)
    ]


async def follow_all(handles: list[JobHandle], on_progress: ProgressCallback | None) -> list[Any]:
    """Each job's result, or the FalkitError it ended with, in order."""
    from falkit.service.core import follow

    async def one(handle: JobHandle) -> Any:
        try:
            return await follow(handle, on_progress)
        except FalkitError as exc:
            return exc

    return list(await asyncio.gather(*(one(h) for h in handles)))

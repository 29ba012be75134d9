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
from falkit.service.engine import UNCERTAIN_HINT
from falkit.service.progress import ProgressCallback, emit
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
    """A failed, cancelled or unknown image job sent again as a new job."""
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
    prepared = PreparedJob(old.model, old.endpoint_id, dict(old.arguments), old.estimated_cost)
    service.client()
    handle = await service.start_prepared(prepared, out_dir=out_dir)
    return await follow(handle, on_progress)


async def resume(
    service: FalService, on_progress: ProgressCallback | None, *, kind: str | None = None
) -> list[Any]:
    """Finish every unfinished job: reattach to submitted ones, submit only unsent ones.

    A job caught ``submitting`` is left alone while the process submitting it lives; one whose
    submitter died is marked ``unknown`` (its POST may have reached Fal). A batch's unsent jobs
    wait for `falkit batch resume`, which keeps the batch's budget.
    """
    from falkit.service.core import follow

    store = await service.store()
    jobs = await store.unfinished_jobs(kind=kind)
    service.client()
    engine = await service.engine()
    outcomes: list[Any] = []
    handles: list[JobHandle] = []
    held: set[str] = set()
    for job in jobs:
        if job.batch_id and job.request_id is None and job.status == "pending":
            held.add(job.batch_id)
        elif job.status == "submitting":
            outcomes.append(await _caught_submitting(service, job))
        else:
            handles.append(engine.attach(job, service.finisher(job.kind)))
    for batch_id in sorted(held):
        text = f"batch {batch_id} has unsent jobs: `falkit batch resume {batch_id}`"
        await emit(on_progress, NoteEvent("", text))

    async def one(handle: JobHandle) -> Any:
        try:
            return await follow(handle, on_progress)
        except FalkitError as exc:
            return exc

    outcomes.extend(await asyncio.gather(*(one(h) for h in handles)))
    return outcomes


async def _caught_submitting(service: FalService, job: JobRecord) -> FalkitError:
    if is_alive(job.submitter):
        return SubmitInProgressError(
            f"job {job.id} is being submitted by a running process ({job.submitter}); left to it"
        )
    store = await service.store()
    message = "interrupted while submitting; " + UNCERTAIN_HINT.format(job_id=job.id)
    await store.fail_job(job.id, error=message, status="unknown")
    return SubmitUncertainError(message)

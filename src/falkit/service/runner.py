"""The journaled life of one job, shared by generation, training, batches and resume.

Journal before waiting: the job row exists before the submit; it is marked "submitting" right
before the POST and gets the request id the moment submit returns. A job with a request id is
only ever reattached to, never submitted again.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NoReturn

from falkit.errors import (
    FalkitError,
    JobCancelledError,
    JobFailedError,
    SubmitUncertainError,
    ValidationError,
)
from falkit.service.progress import EventMapper, ProgressCallback, emit
from falkit.types import (
    CancelledEvent,
    Completed,
    FailedEvent,
    FalResponse,
    InProgress,
    Queued,
    QueuedEvent,
    RequestHandle,
)

if TYPE_CHECKING:
    from falkit.client import FalClient
    from falkit.store import JobRecord, JobStatus, JobStore

UNCERTAIN_HINT = (
    "the submit may have reached Fal, so it was not sent again; "
    "check your Fal dashboard, then `falkit jobs retry {job_id}` to submit it anew"
)


class JobRunner:
    """Submits a stored job once and follows it to its output."""

    def __init__(self, client: FalClient, store: JobStore) -> None:
        self.client = client
        self.store = store

    def handle_for(self, job: JobRecord) -> RequestHandle:
        """Reattach to a submitted job using the URLs submit returned (or rebuilt ones)."""
        if job.request_id is None:
            raise FalkitError(f"job {job.id} was never submitted")
        prefix = self.client.settings.queue_url + "/"
        status, response, cancel = (
            job.status_url or "",
            job.response_url or "",
            job.cancel_url or "",
        )
        # Stored URLs are used only while they are under the configured queue URL, so the key
        # is never sent to a host that is no longer configured.
        if all(url.startswith(prefix) for url in (status, response, cancel)):
            return RequestHandle(job.endpoint_id, job.request_id, status, response, cancel)
        return self.client.handle(job.endpoint_id, job.request_id)

    async def submit(
        self,
        job: JobRecord,
        *,
        webhook_url: str | None = None,
        on_progress: ProgressCallback | None = None,
    ) -> RequestHandle:
        """Submit once, journaling around the POST; reports the job as queued at once."""
        await self.store.mark_submitting(job.id)
        try:
            handle = await self.client.submit(
                job.endpoint_id, job.arguments, webhook_url=webhook_url
            )
        except SubmitUncertainError as exc:
            message = f"{exc}; {UNCERTAIN_HINT.format(job_id=job.id)}"
            await self.store.fail_job(job.id, error=message, status="unknown")
            raise SubmitUncertainError(message, request_id=exc.request_id) from None
        except FalkitError as exc:
            await self.store.fail_job(job.id, error=str(exc), error_type=_error_type(exc))
            raise
        await self.store.set_submitted(
            job.id,
            request_id=handle.request_id,
            status_url=handle.status_url,
            response_url=handle.response_url,
            cancel_url=handle.cancel_url,
        )
        await emit(on_progress, QueuedEvent(job.id, handle.queue_position or 0))
        return handle

    async def follow(
        self, job: JobRecord, handle: RequestHandle, on_progress: ProgressCallback | None
    ) -> FalResponse:
        """Watch until completed, reporting progress; the output, or the job's error raised."""
        mapper = EventMapper(job.id, last_position=handle.queue_position)
        final: Completed | None = None
        running = False
        async for status in self.client.watch(handle, logs=True):
            if isinstance(status, Queued):
                await self.store.set_status(job.id, "submitted", queue_position=status.position)
            elif isinstance(status, InProgress) and not running:
                running = True
                await self.store.set_status(job.id, "running")
            for event in mapper.events(status):
                await emit(on_progress, event)
            if isinstance(status, Completed):
                final = status
        if final is not None and final.failed:
            await self._fail(job, final.error or "failed", final.error_type, on_progress)
        try:
            return await self.client.result(handle)
        except (ValidationError, JobFailedError) as exc:
            await self._fail(job, str(exc), _error_type(exc), on_progress)

    async def _fail(
        self,
        job: JobRecord,
        error: str,
        error_type: str | None,
        on_progress: ProgressCallback | None,
    ) -> NoReturn:
        cancelled = error_type in ("cancelled", "canceled", "request_cancelled")
        status: JobStatus = "cancelled" if cancelled else "failed"
        await self.store.fail_job(job.id, error=error, error_type=error_type, status=status)
        if cancelled:
            await emit(on_progress, CancelledEvent(job.id))
            raise JobCancelledError(
                f"job {job.id} was cancelled", request_id=job.request_id, error_type=error_type
            )
        await emit(on_progress, FailedEvent(job.id, error, error_type))
        raise JobFailedError(
            f"job {job.id} failed: {error}", request_id=job.request_id, error_type=error_type
        )

    async def cancel(self, job: JobRecord) -> str:
        """Ask Fal to cancel; a job not yet submitted is simply marked cancelled."""
        if job.request_id is None:
            await self.store.fail_job(job.id, error="cancelled before submit", status="cancelled")
            return "OK"
        outcome = await self.client.cancel(self.handle_for(job))
        if outcome in ("OK", "CANCELLATION_REQUESTED"):
            await self.store.fail_job(
                job.id, error="cancelled by user", error_type="cancelled", status="cancelled"
            )
        return outcome


def _error_type(exc: Exception) -> str | None:
    if isinstance(exc, ValidationError):
        return "validation_error"
    value = getattr(exc, "error_type", None)
    return value if isinstance(value, str) else None

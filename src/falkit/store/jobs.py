"""JobStore: the journal that makes "no job lost or paid for twice" true.

A job's row is written before its submit (``pending``), claimed ``submitting`` right before the
POST, and gets its request id the moment submit returns. Each step is one statement in the
store's group commit: the call returns once the batch holding it has committed, so a crash at
any point leaves a row saying exactly how far the job got. Every write returns the record as
written (RETURNING), so callers need not read it back.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

from falkit.errors import ValidationError
from falkit.store import job_ops, job_reads
from falkit.store.ids import new_id
from falkit.store.library import LibraryMixin
from falkit.store.models import utcnow
from falkit.store.records import JOB_KINDS, JobRecord, JobStatus, NewImage, NewJob

if TYPE_CHECKING:
    from collections.abc import Sequence

CREATE_CHUNK = 500  # jobs per multi-row INSERT (and per queued operation)
_FAIL_STATUSES = ("failed", "cancelled", "unknown")


class JobStore(LibraryMixin):
    """Jobs, images, LoRAs, uploads and batches in SQLite or PostgreSQL."""

    # ---- the life of a job ----

    async def create_job(
        self,
        *,
        kind: str,
        model: str,
        endpoint_id: str,
        arguments: dict[str, Any],
        estimated_cost: float | None,
        batch_id: str | None = None,
        batch_index: int | None = None,
        job_id: str | None = None,
    ) -> JobRecord:
        """Journal a job before it is submitted (status ``pending``); an id must be new."""
        job = NewJob(kind, model, endpoint_id, arguments, estimated_cost, batch_id, batch_index)
        values = _job_values(job, job_id, utcnow())
        (record,) = await self._write(job_ops.insert_jobs, [values], True)
        return record

    async def create_jobs(self, jobs: Sequence[NewJob]) -> list[JobRecord]:
        """Journal many jobs at once, in order; ids that exist already come back as stored.

        Chunks of CREATE_CHUNK rows are separate operations (other writers' operations may run
        between them), so a rerun after a crash simply fills in what is missing.
        """
        now = utcnow()
        values = [_job_values(job, job.job_id, now) for job in jobs]
        chunks = [values[i : i + CREATE_CHUNK] for i in range(0, len(values), CREATE_CHUNK)]
        calls = [(job_ops.insert_jobs, (chunk, False), len(chunk)) for chunk in chunks]
        done = await self._write_all(calls)
        return [record for chunk in done for record in chunk]

    async def mark_submitting(self, job_id: str, *, submitter: str | None = None) -> JobRecord:
        """Claim a pending job for its one submit; any other state refuses (no double submit).

        ``submitter`` names the claimant (a process, a task) so a stale claim can be told apart.
        Raises StoreError when the job is not pending, NotFoundError when there is none.
        """
        return await self._write(job_ops.mark_submitting, job_id, submitter, utcnow())

    async def release_submitting(self, job_id: str) -> JobRecord:
        """Give a claim back (submitting → pending) when the submit certainly never reached Fal.

        Any other state is left alone and returned as stored.
        """
        return await self._write(job_ops.release_submitting, job_id, utcnow())

    async def release_unknown(self, job_id: str) -> JobRecord:
        """Send an ``unknown`` job back to ``pending``: Fal's request history shows its submit
        never arrived (see falkit.service.reconcile), so it may be submitted once.

        A job in any other state, or one that has a request id, is returned as stored.
        """
        return await self._write(job_ops.release_unknown, job_id, utcnow())

    async def set_submitted(
        self, job_id: str, *, request_id: str, status_url: str, response_url: str, cancel_url: str
    ) -> JobRecord:
        """Record Fal's request id and URLs the moment submit returns.

        The request id is always kept, even if another process gave up on the job meanwhile
        (marked it ``unknown``): knowing it is what lets the job be reattached instead of paid
        for again.
        """
        urls = {
            "b_request_id": request_id,
            "b_status_url": status_url,
            "b_response_url": response_url,
            "b_cancel_url": cancel_url,
        }
        return await self._write(job_ops.set_submitted, job_id, urls, utcnow())

    async def set_status(
        self, job_id: str, status: JobStatus, *, queue_position: int | None = None
    ) -> JobRecord | None:
        """Note progress (queued, running); None when the job had finished (it keeps its status).

        ``queue_position`` is accepted for compatibility and not stored: positions change too
        often to be worth a write each (progress events carry them).
        """
        job_reads.check_status(status)
        return await self._write(job_ops.set_status, job_id, status, utcnow())

    async def complete_job(
        self,
        job_id: str,
        *,
        seed: int | None,
        cost_usd: float | None,
        billable_units: float | None,
        timings: dict[str, Any] | None,
        output: dict[str, Any],
        images: list[NewImage],
    ) -> JobRecord:
        """Mark a job completed and record its images, in one transaction.

        Completing a job twice (two processes following it) keeps the first record, which is
        returned.
        """
        result = {
            "b_seed": str(seed) if seed is not None else None,
            "b_cost": cost_usd,
            "b_units": billable_units,
            "b_timings": timings,
            "b_output": output,
        }
        return await self._write(job_ops.complete_job, job_id, result, list(images), utcnow())

    async def fail_job(
        self,
        job_id: str,
        *,
        error: str,
        error_type: str | None = None,
        status: JobStatus = "failed",
        cost_usd: float | None = None,
    ) -> JobRecord:
        """End a job with an error: ``failed``, ``cancelled`` or ``unknown`` (never re-sent).

        ``cost_usd`` records what Fal may still charge (kept as it was when None). A completed
        job stays completed (its images are on disk and paid for) and is returned as stored.
        """
        if status not in _FAIL_STATUSES:
            raise ValidationError.field("status", f"{status!r}", ", ".join(_FAIL_STATUSES))
        failure = {
            "b_status": status,
            "b_error": error,
            "b_error_type": error_type,
            "b_cost": cost_usd,
        }
        return await self._write(job_ops.fail_job, job_id, failure, utcnow())

    # ---- reading ----

    async def get_job(self, job_id: str) -> JobRecord | None:
        """A job by id, by Fal request id, or by a unique prefix of its id."""
        ref = (job_id or "").strip()
        if not ref:
            return None
        return await self._read(job_reads.find_job, ref)

    async def id_prefixes(self, ids: list[str], minimum: int = 10) -> dict[str, str]:
        """For each job id, its shortest prefix (``minimum`` characters or more) that no other
        job shares: what a listing shows so a short reference is visible."""
        return await self._read(job_reads.id_prefixes, list(ids), minimum)

    async def list_jobs(
        self,
        *,
        search: str | None = None,
        limit: int = 20,
        status: str | None = None,
        kind: str | None = None,
        batch_id: str | None = None,
        model: str | None = None,
        since: dt.datetime | None = None,
        until: dt.datetime | None = None,
        starred: bool | None = None,
        lora: str | None = None,
        offset: int = 0,
    ) -> list[JobRecord]:
        """Jobs newest first; ``search`` matches prompt, model, id or request id (any case).

        ``since`` keeps jobs created at or after that time, ``until`` before it (a naive time
        is taken as UTC); ``lora`` keeps jobs whose arguments name it (a LoRA's weights URL);
        ``offset`` skips that many matches (pages).
        """
        query = job_reads.search_query(
            search=search,
            limit=limit,
            status=status,
            kind=kind,
            batch_id=batch_id,
            model=model,
            since=since,
            extra=job_reads.Extra(until=until, starred=starred, lora=lora, offset=offset),
        )
        return await self._read(job_reads.list_jobs, query)

    async def set_starred(self, job_id: str, starred: bool = True) -> JobRecord:
        """Star a job (or take its star away): the gallery's mark. NotFoundError without one."""
        return await self._write(job_ops.set_starred, job_id, starred)

    async def delete_jobs(self, job_ids: Sequence[str]) -> list[JobRecord]:
        """Forget finished jobs and their image rows; returns the records deleted (with their
        images, so the caller can remove the files). Unknown ids are skipped; an unfinished
        job refuses the whole call (ValidationError) before anything is deleted."""
        return await self._write(job_ops.delete_jobs, list(dict.fromkeys(job_ids)))

    async def unfinished_jobs(self, *, kind: str | None = None) -> list[JobRecord]:
        """Jobs a crash or Ctrl-C left behind (pending to running), oldest first."""
        return await self._read(job_reads.list_jobs, job_reads.unfinished_query(kind))

    async def batch_jobs(self, batch_id: str) -> list[JobRecord]:
        """A batch's jobs in batch order."""
        return await self._read(job_reads.list_jobs, job_reads.batch_query(batch_id))

    async def total_spend(self, *, batch_id: str | None = None) -> float:
        """The sum of recorded costs in USD (jobs without a recorded cost count as 0).

        Rounded to a billionth of a dollar, so float noise never makes a batch look over budget.
        """
        return await self._read(job_reads.total_spend, batch_id)


def _job_values(job: NewJob, job_id: str | None, now: dt.datetime) -> dict[str, Any]:
    """The row of a new job; checked here, before anything is queued."""
    if job.kind not in JOB_KINDS:
        raise ValidationError.field("kind", f"unknown job kind {job.kind!r}", ", ".join(JOB_KINDS))
    prompt = job.arguments.get("prompt")
    return {
        "id": job_id or new_id("j"),
        "kind": job.kind,
        "model": job.model,
        "endpoint_id": job.endpoint_id,
        "arguments": dict(job.arguments),
        "prompt": prompt if isinstance(prompt, str) else None,
        "status": "pending",
        "estimated_cost": job.estimated_cost,
        "batch_id": job.batch_id,
        "batch_index": job.batch_index,
        "created_at": now,
        "updated_at": now,
    }

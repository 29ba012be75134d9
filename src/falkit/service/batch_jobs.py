"""A batch's jobs in the store: journaled up front, one per place, and the budget they need.

Each job's id says its place (``j_<batch hash>_<index>``, ``…_r1`` for a resend), so two runs of
the same batch cannot create a job twice, and the newest job of each place is the one that counts.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from falkit.errors import ValidationError
from falkit.service.batch_plan import BatchPlan, PlannedJob, prepare

if TYPE_CHECKING:
    from falkit.service.core import FalService
    from falkit.store import JobRecord, JobStore


def batch_index(job: JobRecord) -> int:
    return job.batch_index if job.batch_index is not None else -1


def latest_jobs(jobs: list[JobRecord]) -> dict[int, JobRecord]:
    """The newest job of each batch index (a retried index has several)."""
    out: dict[int, JobRecord] = {}
    for job in jobs:
        current = out.get(batch_index(job))
        if current is None or (job.created_at, job.id) > (current.created_at, current.id):
            out[batch_index(job)] = job
    return out


def needs_new_job(job: JobRecord | None, retry_failed: bool) -> bool:
    """No job yet; or one that failed before reaching Fal (safe to send); or, if asked, any
    failed or cancelled one. Never an ``unknown`` one: it may have reached Fal."""
    if job is None:
        return True
    if job.status == "failed" and job.request_id is None:
        return True
    return retry_failed and job.status in ("failed", "cancelled")


async def ensure_jobs(
    service: FalService,
    store: JobStore,
    plan: BatchPlan,
    batch_id: str,
    latest: dict[int, JobRecord],
    retry_failed: bool,
) -> list[JobRecord]:
    """Every job of the plan in the store, creating those missing; in batch order."""
    jobs = []
    for planned in plan.jobs:
        job = latest.get(planned.index)
        if needs_new_job(job, retry_failed):
            attempt = 0 if job is None else _attempt(job) + 1
            job = await _create_job(service, store, planned, batch_id, attempt)
        assert job is not None
        jobs.append(job)
    return jobs


def _attempt(job: JobRecord) -> int:
    _, sep, tail = job.id.rpartition("_r")
    return int(tail) if sep and tail.isdigit() else 0


async def _create_job(
    service: FalService, store: JobStore, planned: PlannedJob, batch_id: str, attempt: int
) -> JobRecord:
    """Journal one job (LoRA names and files resolved to URLs first); its id says its place."""
    prepared = planned.prepared
    params = planned.request.params
    if params.get("loras"):
        prompt, loras = await service.resolve_loras(params["prompt"], params["loras"])
        prepared = prepare(service, {**params, "prompt": prompt, "loras": loras})
    job_id = f"j_{batch_id.removeprefix('b_')}_{planned.index:05d}"
    if attempt:
        job_id += f"_r{attempt}"
    try:
        return await store.create_job(
            kind=prepared.kind, model=prepared.model, endpoint_id=prepared.endpoint_id,
            arguments=prepared.arguments, estimated_cost=prepared.estimated_cost,
            batch_id=batch_id, batch_index=planned.index, job_id=job_id,
        )  # fmt: skip
    except ValidationError:  # another process running the same batch created it just now
        found = await store.get_job(job_id)
        if found is None:
            raise
        return found


def check_budget(
    plan: BatchPlan, latest: dict[int, JobRecord], budget: float | None, retry_failed: bool
) -> None:
    """Refuse, before anything is sent or written, a batch that cannot fit its budget."""
    if budget is None:
        return
    spent = 0.0
    remaining = 0.0
    for planned in plan.jobs:
        job = latest.get(planned.index)
        if job is not None and job.status == "completed":
            spent += job.cost_usd or 0.0
            continue
        if job is not None and not needs_new_job(job, retry_failed) and job.finished:
            continue  # failed or unknown for good: nothing more will be spent on it
        estimate = job.estimated_cost if job is not None else planned.prepared.estimated_cost
        if estimate is None:
            raise ValidationError.field(
                "budget",
                f"the cost of {planned.prepared.model} is unknown, so a budget cannot be kept",
                "catalog models (see `falkit models`), or no --budget",
            )
        remaining += estimate
    if remaining > 0 and spent + remaining > budget + 1e-9:
        done = f"${spent:.4f} spent + " if spent else ""
        raise ValidationError.field(
            "budget",
            f"this batch needs an estimated {done}${remaining:.4f} to finish, more than "
            f"the budget of ${budget:.4f}",
            "a larger --budget, or fewer jobs (fewer lines or sweep values)",
        )

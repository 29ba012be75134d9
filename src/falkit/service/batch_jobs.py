"""A batch's jobs in the store: journaled up front, one per place, and the budget they need.

Each job's id says its place (``j_<batch hash>_<index>``, ``…_r1`` for a resend), so two runs of
the same batch cannot create a job twice, and the newest job of each place is the one that counts.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from falkit.errors import ValidationError
from falkit.request import LoraRef, PreparedJob, check_prompt
from falkit.service.batch_plan import BatchPlan
from falkit.service.loras import (
    LoraPlan,
    LoraSource,
    classify,
    fetch_loras,
    missing_trigger_words,
)

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
    """Every job of the plan in the store, creating those missing in bulk; in batch order."""
    from falkit.store.records import NewJob

    jobs: dict[int, JobRecord] = {}
    new: list[NewJob] = []
    resolver = LoraResolver(service, store)
    for planned in plan.jobs:
        job = latest.get(planned.index)
        if not needs_new_job(job, retry_failed):
            assert job is not None
            jobs[planned.index] = job
            continue
        attempt = 0 if job is None else _attempt(job) + 1
        prepared = await resolver.resolved(planned.prepared)
        new.append(
            NewJob(
                kind=prepared.kind, model=prepared.model, endpoint_id=prepared.endpoint_id,
                arguments=prepared.arguments, estimated_cost=prepared.estimated_cost,
                batch_id=batch_id, batch_index=planned.index,
                job_id=_job_id(batch_id, planned.index, attempt),
            )
        )  # fmt: skip
    for record in await store.create_jobs(new) if new else []:
        jobs[batch_index(record)] = record
    return [jobs[planned.index] for planned in plan.jobs]


def _job_id(batch_id: str, index: int, attempt: int) -> str:
    job_id = f"j_{batch_id.removeprefix('b_')}_{index:05d}"
    return f"{job_id}_r{attempt}" if attempt else job_id


def _attempt(job: JobRecord) -> int:
    _, sep, tail = job.id.rpartition("_r")
    return int(tail) if sep and tail.isdigit() else 0


class LoraResolver:
    """LoRA names and files of a batch resolved to URLs once each, whatever the job count."""

    def __init__(self, service: FalService, store: JobStore) -> None:
        self.service = service
        self.store = store
        self._sources: dict[str, LoraSource] = {}
        self._urls: dict[str, str] = {}

    async def resolved(self, prepared: PreparedJob) -> PreparedJob:
        """The job with its LoRAs as URLs and missing trigger words added to its prompt."""
        items = prepared.arguments.get("loras") or []
        if not items:
            return prepared
        sources = tuple([await self._source(item["path"], item["scale"]) for item in items])
        prompt = str(prepared.arguments.get("prompt", ""))
        missing = missing_trigger_words(prompt, sources)
        if missing:
            prompt = check_prompt(" ".join([*(w for w, _ in missing), prompt]))
        loras = [
            {**item, "path": await self._url(source)}
            for item, source in zip(items, sources, strict=True)
        ]
        arguments = {**prepared.arguments, "prompt": prompt, "loras": loras}
        return dataclasses.replace(prepared, arguments=arguments)

    async def _source(self, path: str, scale: float) -> LoraSource:
        if path not in self._sources:
            self._sources[path] = await classify(self.store, LoraRef(path=path, scale=scale))
        return self._sources[path]

    async def _url(self, source: LoraSource) -> str:
        path = source.ref.path
        if path not in self._urls:
            plan = LoraPlan("", (source,))
            self._urls[path] = (await fetch_loras(self.service, plan, None))[0]["path"]
        return self._urls[path]


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

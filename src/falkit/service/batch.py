"""Bulk generation: many requests (times sweeps) within a budget, resumable, at full speed.

``generate_batch`` reads and expands the requests, checks every one before anything is sent
(:mod:`batch_plan`), journals the batch and all its jobs up front (status ``pending``), runs them
(:mod:`batch_run`) and writes the batch folder (:mod:`batch_output`). The batch id is a hash of
the jobs, so the same command run again (or ``resume_batch(id)``) skips finished jobs, reattaches
to submitted ones and submits only those never sent.

A job caught "submitting" by a crash may or may not have reached Fal; such a job is marked
``unknown``, never re-sent blindly (a double charge is worse than a missing image). A rerun
reconciles the batch's unknown jobs with Fal's request history first
(:mod:`falkit.service.reconcile`): found ones are followed, ones that never arrived are sent
once, the rest stay unknown and are reported. Submits go out through the engine's few lanes,
so a crash leaves at most that many such jobs.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from falkit.errors import LookupFailedError, ValidationError
from falkit.request import normalise
from falkit.service.batch_input import Sweep, expand, read_requests
from falkit.service.batch_jobs import batch_index, check_budget, ensure_jobs, latest_jobs
from falkit.service.batch_output import Row, place_images, write_html, write_manifest, write_sheet
from falkit.service.batch_plan import BatchPlan, plan_batch, plan_from_spec
from falkit.service.batch_run import BatchRun, OnUpdate
from falkit.service.budget import Budget, check_limit
from falkit.service.checks import check_out_dir
from falkit.service.reconcile import settle_batch

if TYPE_CHECKING:
    from falkit.service.core import FalService
    from falkit.store import JobRecord

DEFAULT_CONCURRENCY = 64
MAX_CONCURRENCY = 10_000  # jobs kept submitted at Fal; Fal queues what the account cannot run

__all__ = ["BatchFailure", "BatchResult", "generate_batch", "resume_batch"]


@dataclass(frozen=True)
class BatchFailure:
    """A job of the batch that did not complete, and why."""

    index: int
    line: int
    job_id: str
    status: str
    error: str

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class BatchResult:
    """Where a batch stands after a run (or, for a dry run, what it would be)."""

    batch_id: str
    folder: Path
    total: int
    estimated_cost: float | None
    budget_usd: float | None = None
    dry_run: bool = False
    completed: int = 0
    failed: int = 0
    unknown: int = 0
    pending: int = 0
    unfinished: int = 0
    spent_usd: float = 0.0
    budget_stopped: bool = False
    stopped_by: str | None = None
    failures: tuple[BatchFailure, ...] = ()
    files: dict[str, Path] = field(default_factory=dict)
    submitted: int = 0
    http_requests: int = 0
    elapsed: float = 0.0

    @property
    def ok(self) -> bool:
        """Every job completed."""
        return not self.dry_run and self.completed == self.total

    def to_json(self) -> dict[str, Any]:
        per_job = self.http_requests / self.submitted if self.submitted else None
        return {
            "batch_id": self.batch_id,
            "folder": str(self.folder),
            "dry_run": self.dry_run,
            "total": self.total,
            "completed": self.completed,
            "failed": self.failed,
            "unknown": self.unknown,
            "pending": self.pending,
            "unfinished": self.unfinished,
            "estimated_cost_usd": self.estimated_cost,
            "spent_usd": round(self.spent_usd, 6),
            "budget_usd": self.budget_usd,
            "budget_stopped": self.budget_stopped,
            "stopped_by": self.stopped_by,
            "failures": [f.to_json() for f in self.failures],
            "files": {name: str(path) for name, path in self.files.items()},
            "submitted_this_run": self.submitted,
            "http_requests": self.http_requests,
            "http_requests_per_job": round(per_job, 3) if per_job is not None else None,
            "elapsed_seconds": round(self.elapsed, 3),
        }


async def generate_batch(
    service: FalService,
    requests: str | Path | Sequence[Any],
    *,
    seeds: str | Sequence[int] | None = None,
    models: str | Sequence[str] | None = None,
    guidance: str | Sequence[float] | None = None,
    sizes: str | Sequence[str] | None = None,
    lora_scales: str | Sequence[float] | None = None,
    defaults: dict[str, Any] | None = None,
    concurrency: int = DEFAULT_CONCURRENCY,
    budget: float | None = None,
    out_dir: str | Path | None = None,
    dry_run: bool = False,
    retry_failed: bool = False,
    on_progress: OnUpdate | None = None,
) -> BatchResult:
    """Generate every request under every sweep combination; see the module docstring.

    ``requests`` is an input file (text, .jsonl or .csv) or a list of prompts / request dicts;
    ``defaults`` fill parameters the requests leave out (e.g. ``{"num_inference_steps": 2}``).
    """
    sweep = Sweep.parse(
        seeds=seeds, models=models, guidance=guidance, sizes=sizes, lora_scales=lora_scales
    )
    source = str(requests) if isinstance(requests, str | Path) else "python"
    expanded = expand(read_requests(requests), sweep, _clean(defaults))
    plan = plan_batch(expanded, source)
    concurrency = _check_concurrency(concurrency)
    _check_budget_value(budget)
    check_out_dir(out_dir)  # a dry run checks the folder too
    if dry_run:
        return _dry_result(service, plan, budget, out_dir)
    service.client()  # no key: fail before anything is written
    options = {"concurrency": concurrency, "budget": budget, "sweep": sweep.to_json()}
    return await run_plan(
        service, plan, options, budget=budget, out_dir=out_dir,
        concurrency=concurrency, retry_failed=retry_failed, on_progress=on_progress,
    )  # fmt: skip


async def resume_batch(
    service: FalService,
    batch_id: str,
    *,
    concurrency: int | None = None,
    budget: float | None = None,
    out_dir: str | Path | None = None,
    retry_failed: bool = False,
    on_progress: OnUpdate | None = None,
) -> BatchResult:
    """Carry on a stored batch: its own options unless given anew."""
    service.client()
    store = await service.store()
    record = await store.get_batch(batch_id)
    if record is None:
        known = ", ".join(b.id for b in await store.list_batches(limit=5)) or "none"
        raise LookupFailedError(f"no batch {batch_id!r}; recent batches: {known}")
    plan = plan_from_spec(record.spec)
    options = dict(record.spec.get("options") or {})
    budget = budget if budget is not None else record.budget_usd
    _check_budget_value(budget)
    stored = options.get("concurrency") or DEFAULT_CONCURRENCY
    return await run_plan(
        service,
        plan,
        options,
        budget=budget,
        out_dir=out_dir or record.out_dir,
        concurrency=_check_concurrency(concurrency or stored),
        retry_failed=retry_failed,
        on_progress=on_progress,
        batch_id=record.id,
    )


async def run_plan(
    service: FalService,
    plan: BatchPlan,
    options: dict[str, Any],
    *,
    budget: float | None,
    out_dir: str | Path | None,
    concurrency: int,
    retry_failed: bool,
    on_progress: OnUpdate | None,
    batch_id: str | None = None,
) -> BatchResult:
    """Journal the batch and its jobs, run what is left, write the folder."""
    started = time.monotonic()
    batch_id = batch_id or plan.batch_id
    store = await service.store()
    existing = await store.get_batch(batch_id)
    folder = Path(
        out_dir or (existing.out_dir if existing else None) or _default_folder(service, batch_id)
    )
    check_out_dir(folder)  # images of paid jobs must have somewhere to go: checked first
    if existing:
        await settle_batch(service, batch_id)  # unknown jobs found at Fal, or sent once
    latest = latest_jobs(await store.batch_jobs(batch_id)) if existing else {}
    check_budget(plan, latest, budget, retry_failed)
    await store.create_batch(
        batch_id=batch_id, spec=plan.spec(options), out_dir=str(folder),
        budget_usd=budget, total_jobs=len(plan.jobs),
    )  # fmt: skip
    jobs = await ensure_jobs(service, store, plan, batch_id, latest, retry_failed)
    width = max(4, len(str(len(plan.jobs) - 1)))

    async def placed(job: JobRecord, result: Any) -> None:
        record = getattr(result, "record", None) or await store.get_job(job.id)
        if record is not None:
            await asyncio.to_thread(place_images, record, folder, width, plan.varying)

    stats = service.client().stats
    before = stats.total
    spent = sum(j.cost_usd or 0.0 for j in jobs if j.status == "completed")
    limit = Budget(budget, name="batch budget", hint="a larger --budget", spent=spent)
    runner = BatchRun(
        service, batch_id=batch_id, concurrency=concurrency, budget=limit,
        on_update=on_progress, on_done=placed,
    )  # fmt: skip
    progress = await runner.run(jobs)
    final = latest_jobs(await store.batch_jobs(batch_id))
    files = await asyncio.to_thread(_write_folder, plan, final, folder, width)
    submitted = sum(1 for j in jobs if j.status == "pending" and final[batch_index(j)].request_id)
    return _summary(
        plan, final, folder, budget, files,
        batch_id=batch_id, budget_stopped=progress.budget_stopped,
        stopped_by=str(runner.fatal) if runner.fatal else None,
        errors=runner.errors, submitted=submitted,
        http_requests=stats.total - before, elapsed=time.monotonic() - started,
    )  # fmt: skip


# ---- checks ----


def _check_budget_value(budget: float | None) -> None:
    check_limit(budget, "budget")


def _check_concurrency(value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_CONCURRENCY:
        raise ValidationError.field(
            "concurrency", f"{value} is out of range", f"1 to {MAX_CONCURRENCY}"
        )
    return int(value)


def _clean(defaults: dict[str, Any] | None) -> dict[str, Any]:
    return normalise({k: v for k, v in (defaults or {}).items() if v is not None})


# ---- results ----


def _default_folder(service: FalService, batch_id: str) -> Path:
    return service.settings.home / "batches" / batch_id


def _dry_result(
    service: FalService, plan: BatchPlan, budget: float | None, out_dir: str | Path | None
) -> BatchResult:
    folder = Path(out_dir) if out_dir else _default_folder(service, plan.batch_id)
    return BatchResult(
        batch_id=plan.batch_id, folder=folder, total=len(plan.jobs),
        estimated_cost=plan.estimated_cost, budget_usd=budget, dry_run=True,
        pending=len(plan.jobs),
    )  # fmt: skip


def _write_folder(
    plan: BatchPlan, final: dict[int, JobRecord], folder: Path, width: int
) -> dict[str, Path]:
    """Images placed (any missing ones too), manifest and contact sheets written."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for planned in plan.jobs:
        job = final[planned.index]
        paths = place_images(job, folder, width, plan.varying) if job.status == "completed" else ()
        rows.append(Row(planned.index, planned.request.line, plan.label(planned), job, paths))
    jsonl, csv_path = write_manifest(folder, rows)
    title = f"falkit batch {plan.batch_id}"
    html = write_html(folder, rows, title)
    sheet = write_sheet(folder, rows, _columns(plan, rows))
    return {"manifest_jsonl": jsonl, "manifest_csv": csv_path, "contact_sheet": sheet, "html": html}


def _columns(plan: BatchPlan, rows: list[Row]) -> int:
    """As many columns as the innermost sweep has values (so each row is one sweep), else
    a square-ish grid."""
    cells = sum(max(1, len(r.paths)) for r in rows)
    sweep = plan.jobs[0].request.sweep if plan.jobs else {}
    if sweep:
        inner = list(sweep)[-1]
        count = len({repr(j.request.sweep.get(inner)) for j in plan.jobs})
        per_job = max(1, cells // max(1, len(rows)))
        if 2 <= count * per_job <= 16:
            return count * per_job
    return max(1, min(10, math.ceil(math.sqrt(cells))))


def _summary(
    plan: BatchPlan,
    final: dict[int, JobRecord],
    folder: Path,
    budget: float | None,
    files: dict[str, Path],
    **extra: Any,
) -> BatchResult:
    errors: dict[str, str] = extra.pop("errors")
    counts: Counter[str] = Counter()
    failures = []
    for planned in plan.jobs:
        job = final[planned.index]
        bucket = _bucket(job.status)
        counts[bucket] += 1
        if bucket != "completed":
            error = job.error or errors.get(job.id) or _why(bucket)
            failures.append(
                BatchFailure(planned.index, planned.request.line, job.id, job.status, error)
            )
    spent = sum(j.cost_usd or 0.0 for j in final.values() if j.status == "completed")
    return BatchResult(
        folder=folder,
        total=len(plan.jobs),
        estimated_cost=plan.estimated_cost,
        budget_usd=budget,
        completed=counts["completed"],
        failed=counts["failed"],
        unknown=counts["unknown"],
        pending=counts["pending"],
        unfinished=counts["unfinished"],
        spent_usd=spent,
        failures=tuple(failures),
        files=files,
        **extra,
    )


def _bucket(status: str) -> str:
    if status in ("failed", "cancelled"):
        return "failed"
    if status in ("submitted", "running"):
        return "unfinished"
    return status if status in ("completed", "unknown", "pending") else "pending"


def _why(bucket: str) -> str:
    if bucket == "pending":
        return "not submitted (budget reached or batch stopped); run the batch again"
    return "still at Fal; run the batch again to fetch it"

"""The batch scheduler: keep up to ``concurrency`` jobs at Fal, within a budget, and follow them.

Submits go out through a few submitter lanes (``SUBMIT_LANES``), each job journaled around its
POST by :class:`~falkit.service.runner.JobRunner`; at most that many jobs can be caught
"submitting" by a crash. Every submitted job is then followed by its own task through
:meth:`FalService.run_job` (the client's SSE status stream: one connection per job, no polling),
which downloads and records its images. Before each submit the recorded spend plus the estimates
of the jobs in flight plus this job's estimate must stay within the budget, else submitting stops
and the rest stays pending. One job's failure never stops the others; errors that would fail every
job (no key, rejected key, Fal unreachable, rate limited past the client's retries) stop
submitting, and the jobs already at Fal are still followed to their end.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from falkit.errors import (
    AuthenticationError,
    FalkitError,
    RateLimitedError,
    ServerError,
    ServiceDisabledError,
    StoreError,
    SubmitUncertainError,
    TransportError,
)
from falkit.types import (
    CompletedEvent,
    DownloadingEvent,
    FailedEvent,
    ProgressEvent,
    QueuedEvent,
    RequestHandle,
    StartedEvent,
)

if TYPE_CHECKING:
    from falkit.service.core import FalService
    from falkit.service.progress import ProgressCallback
    from falkit.store import JobRecord

SUBMIT_LANES = 4
SUBMIT_GRACE = 10.0  # seconds a Ctrl-C waits for submits already on the wire
STATES = ("pending", "queued", "running", "done", "failed")
INTERRUPTED_HINT = (
    "interrupted while submitting: the submit may have reached Fal, so it was not sent again; "
    "check your Fal dashboard, then `falkit jobs retry {job_id}` to submit it anew"
)


@dataclass
class BatchProgress:
    """Where a running batch stands; the same object is handed to every progress callback."""

    total: int
    batch_id: str = ""
    counts: Counter[str] = field(default_factory=Counter)
    spent_usd: float = 0.0
    in_flight_usd: float = 0.0
    started_at: float = field(default_factory=time.monotonic)
    finished_this_run: int = 0
    budget_stopped: bool = False

    @property
    def done(self) -> int:
        return self.counts["done"]

    @property
    def failed(self) -> int:
        return self.counts["failed"]

    @property
    def running(self) -> int:
        return self.counts["running"]

    @property
    def queued(self) -> int:
        """Submitted and waiting in Fal's queue."""
        return self.counts["queued"]

    @property
    def pending(self) -> int:
        """Not submitted yet."""
        return self.counts["pending"]

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started_at

    @property
    def eta_seconds(self) -> float | None:
        """Seconds left at this run's completion rate; None before the first completion."""
        left = self.pending + self.queued + self.running
        if left == 0:
            return 0.0
        if self.finished_this_run == 0 or self.budget_stopped:
            return None
        return left * self.elapsed / self.finished_this_run


OnUpdate = Callable[[BatchProgress], None]
OnDone = Callable[["JobRecord", Any], Awaitable[None]]


class BatchScheduler:
    """Runs a batch's unfinished jobs; collects failures instead of stopping on them."""

    def __init__(
        self,
        service: FalService,
        *,
        concurrency: int,
        budget: float | None,
        on_update: OnUpdate | None = None,
        on_done: OnDone | None = None,
        lanes: int = SUBMIT_LANES,
        batch_id: str = "",
    ) -> None:
        self.service = service
        self.batch_id = batch_id
        self.concurrency = max(1, concurrency)
        self.budget = budget
        self.on_update = on_update
        self.on_done = on_done
        self.lanes = max(1, min(lanes, self.concurrency))
        self.progress = BatchProgress(total=0, batch_id=batch_id)
        self.errors: dict[str, str] = {}
        self.fatal: FalkitError | None = None
        self._states: dict[str, str] = {}
        self._estimates: dict[str, float] = {}
        self._slots = asyncio.Condition()
        self._in_flight = 0
        self._pending: list[JobRecord] = []
        self._followers: set[asyncio.Task[None]] = set()

    async def run(self, jobs: list[JobRecord]) -> BatchProgress:
        """Finish what can be finished: reattach, submit within the budget, follow to the end."""
        self.progress = BatchProgress(total=len(jobs), batch_id=self.batch_id)
        self.progress.spent_usd = sum(j.cost_usd or 0.0 for j in jobs if j.status == "completed")
        for job in jobs:
            await self._adopt(job)
        self._pending.reverse()  # popped from the end: input order
        self._changed()
        try:
            await self._submit_all()
            while self._followers:
                await asyncio.gather(*list(self._followers))
        finally:
            await _stop(self._followers)
        self.progress.budget_stopped = self.progress.budget_stopped and self.progress.pending > 0
        return self.progress

    async def _submit_all(self) -> None:
        """Run the submitter lanes to their end.

        A task group rather than gather: on Ctrl-C it waits for every lane's submit on the wire.
        """
        try:
            async with asyncio.TaskGroup() as lanes:
                for _ in range(self.lanes):
                    lanes.create_task(self._submitter())
        except BaseExceptionGroup as group:
            first = group.exceptions[0]
            if len(group.exceptions) == 1 and isinstance(first, FalkitError):
                raise first from None
            raise

    async def _adopt(self, job: JobRecord) -> None:
        """Take a job as the store left it: done, failed, at Fal (reattach) or pending."""
        if job.status == "completed":
            self._set(job.id, "done")
        elif job.status == "submitting":
            store = await self.service.store()
            message = INTERRUPTED_HINT.format(job_id=job.id)
            await store.fail_job(job.id, error=message, status="unknown")
            self._fail(job.id, message)
        elif job.finished:
            self._fail(job.id, job.error or job.status)
        elif job.request_id is not None:
            self._reserve(job)
            self._set(job.id, "queued" if job.status == "submitted" else "running")
            self._follow(job)
        else:
            self._set(job.id, "pending")
            self._pending.append(job)

    # ---- submitting ----

    async def _submitter(self) -> None:
        runner = await self.service.runner()
        while True:
            job = await self._next_job()
            if job is None:
                return
            try:
                handle = await _uninterrupted(runner.submit(job, on_progress=self._tracker(job.id)))
            except FalkitError as exc:
                await self._release(job)
                self._fail(job.id, str(exc))
                if _stops_batch(exc):
                    self.fatal = exc
                continue
            submitted = dataclasses.replace(
                job,
                status="submitted",
                request_id=handle.request_id,
                status_url=handle.status_url,
                response_url=handle.response_url,
                cancel_url=handle.cancel_url,
            )
            self._follow(submitted)

    async def _next_job(self) -> JobRecord | None:
        """The next job to submit once a slot is free and it fits the budget; None to stop.

        A job that does not fit waits for the jobs in flight (their real cost may be below
        their estimate); if it still does not fit with nothing in flight, submitting stops.
        """
        async with self._slots:
            await self._slots.wait_for(self._may_submit)
            if not self._pending or self.fatal is not None:
                return None
            job = self._pending[-1]
            if not self._within_budget(job):
                self.progress.budget_stopped = True
                self._pending.clear()  # the rest stays pending in the store
                self._slots.notify_all()
                self._changed()
                return None
            self._reserve(self._pending.pop())
            return job

    def _may_submit(self) -> bool:
        if not self._pending or self.fatal is not None:
            return True
        if self._in_flight >= self.concurrency:
            return False
        return self._in_flight == 0 or self._within_budget(self._pending[-1])

    def _within_budget(self, job: JobRecord) -> bool:
        if self.budget is None:
            return True
        committed = self.progress.spent_usd + self.progress.in_flight_usd
        return committed + (job.estimated_cost or 0.0) <= self.budget + 1e-9

    def _reserve(self, job: JobRecord) -> None:
        """Count a job against the concurrency limit and (by its estimate) the budget."""
        self._in_flight += 1
        self._estimates[job.id] = job.estimated_cost or 0.0
        self.progress.in_flight_usd += self._estimates[job.id]

    async def _release(self, job: JobRecord, cost: float | None = None) -> None:
        self.progress.in_flight_usd = max(
            0.0, self.progress.in_flight_usd - self._estimates.pop(job.id, 0.0)
        )
        self.progress.spent_usd += cost or 0.0
        self._in_flight -= 1
        async with self._slots:
            self._slots.notify_all()

    # ---- following ----

    def _follow(self, job: JobRecord) -> None:
        task = asyncio.create_task(self._finish(job), name=f"follow {job.id}")
        self._followers.add(task)
        task.add_done_callback(self._followers.discard)

    async def _finish(self, job: JobRecord) -> None:
        cost: float | None = None
        try:
            result = await self.service.run_job(job, self._tracker(job.id))
            cost = getattr(result, "cost_usd", None)
            if self.on_done is not None:
                await self.on_done(job, result)
            self._set(job.id, "done")
            self.progress.finished_this_run += 1
        except FalkitError as exc:
            message = str(exc)
            if isinstance(exc, TransportError) and not isinstance(exc, SubmitUncertainError):
                message += "; the job is still at Fal: run the batch again to fetch it"
            self._fail(job.id, message)
            self.progress.finished_this_run += 1
        finally:
            await self._release(job, cost)
            self._changed()

    def _tracker(self, job_id: str) -> ProgressCallback:
        """A job's progress events, folded into the batch's counts."""

        def track(event: ProgressEvent) -> None:
            if isinstance(event, QueuedEvent):
                self._set(job_id, "queued")
            elif isinstance(event, StartedEvent | DownloadingEvent):
                self._set(job_id, "running")
            elif isinstance(event, FailedEvent | CompletedEvent):
                return  # settled by _finish, once the images are placed or the error known

        return track

    # ---- bookkeeping ----

    def _set(self, job_id: str, state: str) -> None:
        previous = self._states.get(job_id)
        if previous == state or previous in ("done", "failed"):
            return
        if previous is not None:
            self.progress.counts[previous] -= 1
        self._states[job_id] = state
        self.progress.counts[state] += 1
        self._changed()

    def _fail(self, job_id: str, message: str) -> None:
        self.errors[job_id] = message
        self._set(job_id, "failed")

    def _changed(self) -> None:
        if self.on_update is not None:
            self.on_update(self.progress)


async def _stop(tasks: set[asyncio.Task[None]]) -> None:
    """Cancel the jobs still being followed and wait until they have let go (they stay
    journaled at Fal: a resume reattaches)."""
    left = [task for task in tasks if not task.done()]
    for task in left:
        task.cancel()
    if left:
        await asyncio.gather(*left, return_exceptions=True)


async def _uninterrupted(submit: Coroutine[Any, Any, RequestHandle]) -> RequestHandle:
    """Await a submit; if cancelled (Ctrl-C) meanwhile, let the POST finish first.

    A POST cut off mid-way leaves a job that may or may not be at Fal ("unknown"); letting it
    finish (for at most SUBMIT_GRACE seconds) journals its request id, so a resume reattaches.
    """
    task = asyncio.ensure_future(submit)
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        with contextlib.suppress(Exception, asyncio.CancelledError):
            await asyncio.wait_for(task, SUBMIT_GRACE)
        raise


def _stops_batch(exc: FalkitError) -> bool:
    """Errors at submit that every following job would hit too."""
    if isinstance(exc, SubmitUncertainError):
        return False
    fatal = (
        AuthenticationError,
        ServiceDisabledError,
        RateLimitedError,
        ServerError,
        StoreError,
        TransportError,
    )
    return isinstance(exc, fatal)

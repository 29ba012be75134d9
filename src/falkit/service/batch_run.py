"""Running a batch on the job engine: keep up to ``concurrency`` jobs at Fal, within a budget.

Jobs are handed to the engine in batch order while fewer than ``concurrency`` are in flight and
the next one fits the budget (recorded spend + the estimates of jobs in flight + its own). A
job that does not fit waits for the jobs in flight (their real cost may be below the estimate);
if it still does not fit with nothing in flight, submitting stops and the rest stays pending.
One job's failure never stops the others; errors that would fail every job (no key, rejected
key, Fal unreachable, rate limited past the client's retries) stop submitting, and the jobs
already at Fal are still followed to their end. Progress is published as BatchProgressEvent
snapshots a few times a second.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from falkit.errors import (
    AuthenticationError,
    BudgetExceededError,
    FalkitError,
    RateLimitedError,
    ServerError,
    ServiceDisabledError,
    StoreError,
    SubmitUncertainError,
    TransportError,
)
from falkit.events import BatchProgressEvent
from falkit.service.reconcile import caught_submitting

if TYPE_CHECKING:
    from falkit.service.budget import Budget
    from falkit.service.core import FalService
    from falkit.service.engine import JobEngine
    from falkit.service.handle import JobHandle
    from falkit.store import JobRecord

TICK = 0.25  # seconds between progress snapshots while something changes

OnUpdate = Callable[[BatchProgressEvent], None]
OnDone = Callable[["JobRecord", Any], Awaitable[None]]


class BatchRun:
    """Runs a batch's unfinished jobs; collects failures instead of stopping on them."""

    def __init__(
        self,
        service: FalService,
        *,
        batch_id: str,
        concurrency: int,
        budget: Budget,
        on_update: OnUpdate | None = None,
        on_done: OnDone | None = None,
    ) -> None:
        self.service = service
        self.batch_id = batch_id
        self.concurrency = max(1, concurrency)
        self.budget = budget
        self.on_update = on_update
        self.on_done = on_done
        self.errors: dict[str, str] = {}
        self.fatal: FalkitError | None = None
        self.budget_stopped = False
        self.total = 0
        self.done = 0
        self.failed = 0
        self.finished_this_run = 0
        self._pending: list[JobRecord] = []
        self._flying: dict[str, JobHandle] = {}  # at Fal: these count against concurrency
        self._finishing: dict[str, JobHandle] = {}  # done at Fal, downloading
        self._placing: set[asyncio.Task[None]] = set()
        self._changed = asyncio.Event()
        self._dirty = True
        self._started = time.monotonic()
        self._last: BatchProgressEvent | None = None

    async def run(self, jobs: list[JobRecord]) -> BatchProgressEvent:
        """Finish what can be finished: reattach, submit within the budget, follow to the end."""
        engine = await self.service.engine()
        self.total = len(jobs)
        for job in jobs:
            await self._adopt(engine, job)
        ticker = asyncio.create_task(self._tick())
        try:
            await self._submit_all(engine)
            while self._flying or self._finishing or self._placing:
                await self._wait_change()
        finally:
            ticker.cancel()
        return self._snapshot(final=True)

    # ---- adopting what the journal says ----

    async def _adopt(self, engine: JobEngine, job: JobRecord) -> None:
        if job.status == "completed":
            self.done += 1
        elif job.status == "submitting":
            await self._caught_submitting(job)
        elif job.finished:
            self._failed(job.id, job.error or job.status)
        elif job.request_id is not None:
            self.budget.reserve(job.id, job.estimated_cost or 0.0, force=True)
            handle = engine.launch(
                job.id, job.kind, record=job, finish=self.service.finisher(job.kind),
                budgets=(self.budget,), estimate=job.estimated_cost, logs=False,
            )  # fmt: skip
            self._flying_add(job, handle)
        else:
            self._pending.append(job)

    async def _caught_submitting(self, job: JobRecord) -> None:
        """Left to a live submitter, else unknown (reconciled on the next run)."""
        store = await self.service.store()
        self._failed(job.id, str(await caught_submitting(store, job)))

    # ---- submitting ----

    async def _submit_all(self, engine: JobEngine) -> None:
        finish = self.service.finisher("image")
        budgets = (self.service.budget, self.budget)
        for index, job in enumerate(self._pending):
            if not await self._slot_for(job):
                self._pending = self._pending[index:]
                return
            try:
                handle = engine.launch(
                    job.id, "image", record=job, finish=finish, budgets=budgets,
                    estimate=job.estimated_cost, what=f"job {job.id}", logs=False,
                )  # fmt: skip
            except BudgetExceededError:  # the service's own spend cap
                self.budget_stopped = True
                self._pending = self._pending[index:]
                return
            self._flying_add(job, handle)
        self._pending = []

    async def _slot_for(self, job: JobRecord) -> bool:
        """Wait until the job may be sent; False to stop submitting."""
        while True:
            if self.fatal is not None:
                return False
            fits = self.budget.fits(job.estimated_cost) and self.service.budget.fits(
                job.estimated_cost
            )
            if len(self._flying) < self.concurrency and fits:
                return True
            if not self._flying and not fits:
                self.budget_stopped = True
                self._dirty = True
                return False
            await self._wait_change()

    # ---- jobs ending ----

    def _flying_add(self, job: JobRecord, handle: JobHandle) -> None:
        self._flying[job.id] = handle
        self._dirty = True
        handle.on_state(lambda state: self._landed(job.id) if state == "downloading" else None)
        handle.add_done_callback(lambda error: self._ended(job, handle, error))

    def _landed(self, job_id: str) -> None:
        """Fal is done with the job: its slot is free while its images download."""
        handle = self._flying.pop(job_id, None)
        if handle is not None:
            self._finishing[job_id] = handle
            self._wake()

    def _ended(self, job: JobRecord, handle: JobHandle, error: BaseException | None) -> None:
        self._flying.pop(job.id, None)
        self._finishing.pop(job.id, None)
        self.finished_this_run += 1
        if error is None:
            self.done += 1
            if self.on_done is not None:
                task = asyncio.ensure_future(self._place(job, handle))
                self._placing.add(task)
                task.add_done_callback(self._placed)
        else:
            message = str(error)
            record = handle.record
            sent = record is not None and record.request_id is not None
            if isinstance(error, TransportError) and sent:
                message += "; the job is still at Fal: run the batch again to fetch it"
            self._failed(job.id, message)
            if not sent and isinstance(error, FalkitError) and stops_batch(error):
                self.fatal = self.fatal or error
        self._wake()

    async def _place(self, job: JobRecord, handle: JobHandle) -> None:
        assert self.on_done is not None
        await self.on_done(job, await handle.result())

    def _placed(self, task: asyncio.Task[None]) -> None:
        self._placing.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self.errors.setdefault("placing", str(task.exception()))
        self._wake()

    def _failed(self, job_id: str, message: str) -> None:
        self.failed += 1
        self.errors[job_id] = message
        self._dirty = True

    # ---- progress ----

    def _wake(self) -> None:
        self._dirty = True
        self._changed.set()

    async def _wait_change(self) -> None:
        await self._changed.wait()
        self._changed.clear()

    async def _tick(self) -> None:
        while True:
            if self._dirty:
                self._dirty = False
                self._snapshot()
            await asyncio.sleep(TICK)

    def _snapshot(self, *, final: bool = False) -> BatchProgressEvent:
        running = sum(1 for h in self._flying.values() if h.started)
        queued = len(self._flying) - running
        downloading = len(self._finishing)
        pending = self.total - self.done - self.failed - len(self._flying) - downloading
        elapsed = time.monotonic() - self._started
        left = pending + len(self._flying) + downloading
        eta: float | None = None
        if left == 0:
            eta = 0.0
        elif self.finished_this_run and not self.budget_stopped:
            eta = left * elapsed / self.finished_this_run
        event = BatchProgressEvent(
            self.batch_id, total=self.total, pending=pending, queued=queued, running=running,
            downloading=downloading,
            done=self.done, failed=self.failed, spent_usd=round(self.budget.spent, 6),
            in_flight_usd=round(self.budget.in_flight, 6), budget_usd=self.budget.limit,
            budget_stopped=self.budget_stopped and (pending > 0 or (final and pending > 0)),
            elapsed=round(elapsed, 3), eta_seconds=eta,
        )  # fmt: skip
        if self.on_update is not None and event != self._last:
            self.on_update(event)
        self._last = event
        return event


def stops_batch(exc: FalkitError) -> bool:
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

"""`falkit worker`: takes jobs from the queue and runs them on an ordinary job engine.

Each ``run_job`` task runs its job to the end on this process's engine (``engine.attach``:
submitted once if it was never sent, else only followed), with PgQueuer's heartbeat on the
task meanwhile. If this process dies or stops for longer than ``heartbeat`` seconds, another
worker takes the task and runs it again, which is safe:

* a job that has a request id is only followed (Fal is asked again; nothing is sent twice);
* a pending job is claimed by the journal's compare-and-set (pending → submitting) before its
  POST, so of two workers running it at once only one can submit;
* a job caught ``submitting`` by a dead worker is ``unknown``, settled with Fal's request
  history (falkit.service.reconcile), never simply sent again;
* a completed job is left alone, and images are stored create-only, so a paused worker
  waking up after another finished its job writes nothing twice.

The engine's events go to the bus (``engine.sink``); bus messages from the API replicas (a
webhook's delivery, a cancel) reach the engine's ``deliver`` / ``follow_now`` / ``cancel``.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from falkit.distributed.bus import EventBus
from falkit.distributed.pg import connect
from falkit.distributed.queue import CHANNEL, EXPAND_BATCH, RUN_JOB, enqueue_jobs, queries_for
from falkit.errors import FalkitError
from falkit.types import FalResponse

if TYPE_CHECKING:
    import asyncpg
    from pgqueuer import Job, Queries, QueueManager

    from falkit.config import Settings
    from falkit.service.core import FalService
    from falkit.store import JobRecord

logger = logging.getLogger("falkit.distributed.worker")
LATE_MESSAGES = 30.0
"""A delivery for a job this worker has not reached yet (its submit's answer still on the
way) is tried again for this long."""
RETRY_UNSETTLED = dt.timedelta(seconds=15)
RECONCILE_EVERY = 5.0
"""One reconcile (a read of Fal's request history for every unknown job) at a time per worker,
at most this often: its tasks for unknown jobs share it instead of each reading the history."""


@dataclass(frozen=True)
class WorkerOptions:
    concurrency: int = 32
    """Jobs run at once by this worker."""
    heartbeat: float = 10.0
    """Seconds without a heartbeat after which another worker takes a job over."""
    webhook_grace: float = 120.0


class Worker:
    """One worker process's queue consumer over one FalService (see the module docstring)."""

    def __init__(self, service: FalService, options: WorkerOptions | None = None) -> None:
        self.service = service
        self.options = options or WorkerOptions()
        self.bus = EventBus(service.settings.database_url, "worker")
        self.stopping = False
        self.ran = 0
        self._late: list[tuple[float, str, dict[str, Any]]] = []
        self._queries: Queries | None = None
        self._manager: QueueManager | None = None
        self._reconciling = asyncio.Lock()
        self._reconciled_at = -RECONCILE_EVERY

    async def run(self, stop: asyncio.Event) -> None:
        """Take and run jobs until ``stop`` is set; then hand running jobs back to the queue."""
        engine = await self.service.engine()
        await self.bus.start()
        engine.sink = self.bus.publish
        self.bus.on_control = self._control
        first = await connect(self.service.settings.database_url, "worker-queue")
        consuming = asyncio.create_task(self._consume(first), name="falkit-worker-queue")
        retrying = asyncio.create_task(self._retry_late(), name="falkit-worker-late")
        try:
            await asyncio.wait(
                {consuming, asyncio.ensure_future(stop.wait())}, return_when="FIRST_COMPLETED"
            )
        finally:
            await self._stop(consuming, retrying)

    async def _consume(self, conn: asyncpg.Connection) -> None:
        """Take tasks from the queue until stopping; a lost queue connection (the server
        restarted, a network cut) is opened again, with a growing pause (0.2 s to 5 s)."""
        failures = 0
        while True:
            try:
                await self._consume_on(conn)
                reason = "the queue stopped"
            except Exception as exc:
                reason = f"{type(exc).__name__}: {exc}"
            if self.stopping:
                return
            failures += 1
            logger.warning("queue connection lost (%s); reconnecting", reason)
            await asyncio.sleep(min(5.0, 0.2 * 2 ** (failures - 1)))
            try:
                conn = await connect(self.service.settings.database_url, "worker-queue")
            except Exception as exc:
                logger.warning("queue: cannot connect (%s); trying again", exc)
                continue
            failures = 0

    async def _consume_on(self, conn: asyncpg.Connection) -> None:
        from pgqueuer import QueueManager
        from pgqueuer.domain.types import Channel

        self._queries = queries_for(conn)
        manager = QueueManager(self._queries, channel=Channel(CHANNEL))
        manager.entrypoint(RUN_JOB)(self.run_job)
        manager.entrypoint(EXPAND_BATCH)(self.expand_batch)
        self._manager = manager
        beat = dt.timedelta(seconds=self.options.heartbeat)
        batch = max(1, min(10, self.options.concurrency // 4))
        try:
            await manager.run(
                dequeue_timeout=beat / 2,
                batch_size=batch,
                max_concurrent_tasks=max(self.options.concurrency, 2 * batch),
                heartbeat_timeout=beat,
                log_aggregation_interval=dt.timedelta(seconds=30),
            )
        finally:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.close(), 5)

    async def _stop(self, consuming: asyncio.Task[None], retrying: asyncio.Task[None]) -> None:
        """No new tasks; running jobs stop following (they stay journaled) and their tasks
        go back to the queue at once, for another worker."""
        self.stopping = True
        if self._manager is not None:
            self._manager.shutdown.set()
        engine = await self.service.engine()
        await engine.aclose()
        retrying.cancel()
        with contextlib.suppress(Exception, asyncio.CancelledError):
            await asyncio.wait_for(consuming, 30)
        await self.bus.aclose()

    # ---- tasks ----

    async def run_job(self, task: Job) -> None:
        """Run one job to its end (see the module docstring); idempotent."""
        from pgqueuer import RetryRequested

        job_id = (task.payload or b"").decode()
        store = await self.service.store()
        record = await store.get_job(job_id)
        if record is None or (record.finished and record.status != "unknown"):
            return  # done; an unknown job is not: it waits to be reconciled
        if record.status in ("submitting", "unknown"):
            settled = await self._settled(record)
            if settled is None:
                raise RetryRequested(RETRY_UNSETTLED, f"job {job_id} is not settled yet")
            record = settled
        self.bus.offsets[job_id] = await self.bus.max_seq(job_id)
        try:
            state = await self._attached(record)
        finally:
            self.bus.offsets.pop(job_id, None)
        self.ran += 1
        logger.info("job %s: run ended (%s)", job_id, state)

    async def _attached(self, record: JobRecord) -> str:
        """Run the journaled job on the engine to its end; the state it ended in."""
        from pgqueuer import RetryRequested

        engine = await self.service.engine()
        try:
            handle = engine.attach(record, self.service.finisher(record.kind))
        except FalkitError:  # the engine is closing: another worker runs it
            raise RetryRequested(dt.timedelta(0), "worker stopping") from None
        try:
            await handle.result()
        except FalkitError:
            # Stopped following (not ended), or left unknown (a submit that may have reached
            # Fal): run it again later, when reconciling can place it.
            if handle.state in ("detached", "unknown", "submitting"):
                delay = dt.timedelta(0) if self.stopping else RETRY_UNSETTLED
                raise RetryRequested(delay, f"job {record.id} not followed to its end") from None
        return handle.state

    async def _settled(self, record: JobRecord) -> JobRecord | None:
        """A job another worker left ``submitting`` or ``unknown``: its record once placed
        (found at Fal, or certainly never sent), else None (a live submitter, or doubt)."""
        from falkit.service.jobs import SubmitInProgressError
        from falkit.service.reconcile import caught_submitting, reconcile

        store = await self.service.store()
        if record.status == "submitting":
            caught = await caught_submitting(store, record)
            if isinstance(caught, SubmitInProgressError):  # its submitter lives: wait for it
                return None
        async with self._reconciling:
            now = asyncio.get_running_loop().time()
            current = await store.get_job(record.id)
            due = now - self._reconciled_at >= RECONCILE_EVERY
            if current is not None and current.status == "unknown" and due:
                await reconcile(self.service)
                self._reconciled_at = asyncio.get_running_loop().time()
        again = await store.get_job(record.id)
        if again is None or again.finished:
            return None
        return again if again.status == "pending" or again.request_id else None

    async def expand_batch(self, task: Job) -> None:
        """Queue a run of each unfinished job of a journaled batch."""
        batch_id = (task.payload or b"").decode()
        store = await self.service.store()
        jobs = await store.batch_jobs(batch_id)
        assert self._queries is not None
        added = await enqueue_jobs(self._queries, [job.id for job in jobs if not job.finished])
        logger.info("batch %s: %d of %d jobs queued", batch_id, added, len(jobs))

    # ---- messages from the API replicas ----

    def _control(self, kind: str, body: dict[str, Any]) -> None:
        if not self._apply(kind, body) and kind in ("_deliver", "_follow"):
            deadline = asyncio.get_running_loop().time() + LATE_MESSAGES
            self._late.append((deadline, kind, body))

    def _apply(self, kind: str, body: dict[str, Any]) -> bool:
        engine = self.service._engine
        if engine is None:
            return False
        request_id = str(body.get("request_id", ""))
        if kind == "_deliver":
            units = body.get("billable_units")
            response = FalResponse(data=body.get("data") or {}, request_id=request_id,
                                   billable_units=units)  # fmt: skip
            return engine.deliver(request_id, response)
        if kind == "_follow":
            return engine.follow_now(request_id)
        if kind == "_cancel":
            handle = engine.get(str(body.get("job_id", "")))
            if handle is not None and not handle.done:
                asyncio.get_running_loop().create_task(handle.cancel())
                return True
        return False

    async def _retry_late(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(0.5)
            now = loop.time()
            late, self._late = self._late, []
            for deadline, kind, body in late:
                if not self._apply(kind, body) and deadline > now:
                    self._late.append((deadline, kind, body))


async def run_worker(settings: Settings, options: WorkerOptions, stop: asyncio.Event) -> int:
    """A worker over its own FalService until ``stop``; how many jobs it ran to their end."""
    from falkit.service import FalService
    from falkit.service.engine import EngineOptions

    engine = EngineOptions(webhook_url=_webhook(settings), webhook_grace=options.webhook_grace)
    async with FalService(settings, engine_options=engine) as service:
        service.client()  # no key: refuse now, not at the first job
        worker = Worker(service, options)
        await worker.run(stop)
        return worker.ran


def _webhook(settings: Settings) -> str | None:
    """Where Fal delivers outcomes: any replica behind FALKIT_PUBLIC_URL."""
    return settings.public_url.rstrip("/") + "/webhooks/fal" if settings.public_url else None

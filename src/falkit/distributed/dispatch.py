"""An API replica's side of the cluster: jobs are queued for the workers, not run here.

``ClusterDispatcher`` is the engine's ``dispatcher``: the engine checks, reserves, prepares
(uploads) and journals a job as on one machine, then ``run`` queues it (PgQueuer, deduped by
job id; several jobs started together go in one INSERT) and mirrors its events from the bus
into the job's handle until it ends. A Fal webhook any replica receives, and a cancel, are
passed to whichever worker runs the job as bus messages.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import TYPE_CHECKING

from falkit.distributed.mirror import Mirrors, mirrored, settle
from falkit.distributed.pg import connect
from falkit.distributed.queue import enqueue_jobs, queries_for
from falkit.errors import JobCancelledError, JobFailedError
from falkit.events import CancelledEvent
from falkit.service.engine_parts import close_budgets, settle_all

if TYPE_CHECKING:
    import asyncpg

    from falkit.distributed.bus import EventBus
    from falkit.service.core import FalService
    from falkit.service.engine import JobEngine
    from falkit.service.handle import JobHandle, LiveJob
    from falkit.store import JobRecord
    from falkit.types import FalResponse

logger = logging.getLogger("falkit.distributed.dispatch")
MAX_INLINE_DELIVERY = 256 * 1024
"""A webhook output larger than this is not copied to the bus: the worker fetches it."""


class Enqueuer:
    """Queues jobs' runs, every job asked for meanwhile in one INSERT (group commit)."""

    def __init__(self, database_url: str | None) -> None:
        self._url = database_url
        self._conn: asyncpg.Connection | None = None
        self._waiting: list[tuple[str, asyncio.Future[None]]] = []
        self._task: asyncio.Task[None] | None = None

    async def add(self, job_id: str) -> None:
        """Return once the job's run is queued (or one was queued already)."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.append((job_id, future))
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._drain(), name="falkit-enqueue")
        await future

    async def _drain(self) -> None:
        while self._waiting:
            batch, self._waiting = self._waiting, []
            try:
                if self._conn is None or self._conn.is_closed():
                    self._conn = await connect(self._url, "enqueue")
                await enqueue_jobs(queries_for(self._conn), [job_id for job_id, _ in batch])
            except Exception as exc:
                if self._conn is not None:
                    self._conn.terminate()
                    self._conn = None
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            for _, future in batch:
                if not future.done():
                    future.set_result(None)

    async def aclose(self) -> None:
        if self._task is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.shield(self._task), 10)
        if self._conn is not None:
            with contextlib.suppress(Exception):
                await self._conn.close()


class ClusterDispatcher:
    """The engine's dispatcher on an API replica (see the module docstring)."""

    def __init__(self, service: FalService, engine: JobEngine, bus: EventBus) -> None:
        self.service, self.engine, self.bus = service, engine, bus
        self.enqueuer = Enqueuer(service.settings.database_url)
        self.mirrors = Mirrors(service, engine, bus)

    async def run(self, live: LiveJob) -> None:
        """Queue the (journaled) job and mirror it to its end; settle its budgets."""
        live.state = "pending"
        await self.enqueuer.add(live.job_id)
        outcome = await settle(self.service, live, await mirrored(self.bus, live))
        if isinstance(outcome, JobCancelledError):
            for budget in live.budgets:
                budget.release(live.job_id)
        elif isinstance(outcome, JobFailedError):
            close_budgets(live, outcome)
        else:
            settle_all(live, getattr(outcome, "cost_usd", None))

    def deliver(self, request_id: str, response: FalResponse) -> bool:
        """Pass a webhook's output to the worker following the request."""
        body = {
            "request_id": request_id,
            "data": response.data,
            "billable_units": response.billable_units,
        }
        if len(json.dumps(body, default=str)) > MAX_INLINE_DELIVERY:
            return self.follow_now(request_id)
        self.bus.control("_deliver", body)
        return True

    def follow_now(self, request_id: str) -> bool:
        """Have the worker following the request look at it now (an error webhook, a cancel)."""
        self.bus.control("_follow", {"request_id": request_id})
        return True

    async def cancel(self, live: LiveJob) -> str:
        """Cancel a job that runs on a worker: in the journal if it was never sent, at Fal if
        it was (its worker is told to look now), else asked of its worker."""
        store = await self.service.store()
        record = await store.get_job(live.job_id)
        if record is None or record.finished:
            return f"ALREADY_{(record.status if record else 'GONE').upper()}"
        if record.request_id is not None:
            handle = self.engine._handle_for(record)
            outcome = await self.service.client().cancel(handle)
            self.follow_now(record.request_id)
            return outcome
        if record.status == "pending":
            await store.fail_job(record.id, error="cancelled before submit", status="cancelled")
            live.publish(CancelledEvent(record.id, False))  # the bus ends every mirror of it
            return "OK"
        self.bus.control("_cancel", {"job_id": record.id})
        return "CANCELLATION_REQUESTED"

    async def watch(self, record: JobRecord) -> JobHandle:
        return await self.mirrors.watch(record)

    async def aclose(self) -> None:
        await self.mirrors.aclose()
        await self.enqueuer.aclose()

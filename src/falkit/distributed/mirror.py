"""Handles on jobs that run in another process: their events mirrored from the bus.

A mirror is an ordinary ``LiveJob`` that no task of this engine drives: it is fed the job's
events from the table first, then as the bus brings them, each with the seq the cluster gave
it (``LiveJob.relay``), so ``JobHandle.events(after=seq)`` and SSE's ``Last-Event-ID`` work
on any replica. When the final event comes, its outcome is settled from the journal (a
completed image job's result is the journal's record, as on one machine).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

from falkit.errors import JobCancelledError, JobFailedError
from falkit.events import CancelledEvent, CompletedEvent, Event, FailedEvent
from falkit.service.handle import JobHandle, LiveJob

if TYPE_CHECKING:
    from falkit.distributed.bus import EventBus
    from falkit.service.core import FalService
    from falkit.service.engine import JobEngine
    from falkit.store import JobRecord

KEEP = 2000
"""Mirrors kept per process (the oldest finished ones are dropped first)."""
_STATES = {"queued": "queued", "started": "running", "step": "running", "log": "running",
           "downloading": "downloading"}  # fmt: skip


def relay_state(live: LiveJob, event: Event) -> None:
    """The live state and queue position an event implies, as the engine sets them."""
    state = _STATES.get(event.type)
    if state is not None:
        live.state = state
    if event.type == "queued":
        live.position = getattr(event, "position", None)
    elif state == "running":
        live.started, live.position = True, None


async def mirrored(bus: EventBus, live: LiveJob) -> Event:
    """Relay the job's events into ``live`` (its table history, then new ones) until the
    final one, which is returned unrelayed (the caller settles it)."""
    final: asyncio.Future[Event] = asyncio.get_running_loop().create_future()

    def seen(event: Event) -> None:
        if final.done():
            return
        if event.final:
            final.set_result(event)
            return
        relay_state(live, event)
        live.relay(event)

    unsubscribe = bus.subscribe(live.job_id, seen)
    try:
        for event in await bus.history(live.job_id):
            seen(event)
        return await final
    finally:
        unsubscribe()


async def settle(service: FalService, live: LiveJob, final: Event) -> Any:
    """Relay the final event (a completed one with the journal's result) and settle the
    job's outcome; returns the result, or the error the job ended with."""
    if isinstance(final, CompletedEvent):
        result = await _result(service, live, final)
        live.relay(CompletedEvent(live.job_id, result, seq=final.seq))
        live.state = "completed"
        live.finish(result)
        return result
    error: Exception
    if isinstance(final, CancelledEvent):
        live.state = "cancelled"
        error = JobCancelledError(f"job {live.job_id} was cancelled")
    else:
        live.state = "failed"
        text = getattr(final, "error", "") or "failed"
        error = JobFailedError(text, error_type=getattr(final, "error_type", None))
    live.relay(final)
    live.finish(error=error)
    return error


async def _result(service: FalService, live: LiveJob, final: CompletedEvent) -> Any:
    store = await service.store()
    record = await store.get_job(live.job_id)
    if record is not None:
        live.record = record
    if record is not None and record.kind == "image" and record.status == "completed":
        from falkit.service.results import GenerationResult

        return GenerationResult.from_record(record)
    return final.result


class Mirrors:
    """This process's mirrors, one per job however many handles read it."""

    def __init__(self, service: FalService, engine: JobEngine, bus: EventBus) -> None:
        self.service, self.engine, self.bus = service, engine, bus
        self._mirrors: OrderedDict[str, LiveJob] = OrderedDict()
        self._tasks: set[asyncio.Task[None]] = set()

    async def watch(self, record: JobRecord) -> JobHandle:
        """A handle on the job's events wherever it runs (the journal's end if the table
        has no final event for a finished job)."""
        live = self._mirrors.get(record.id)
        if live is not None:
            return JobHandle(self.engine, live)
        if record.finished and not any(e.final for e in await self.bus.history(record.id)):
            from falkit.service.jobs import ended_handle

            return ended_handle(self.engine, record)
        live = LiveJob(record.id, record.kind, record)
        live.state = record.status
        self._mirrors[record.id] = live
        task = asyncio.create_task(self._follow(live), name=f"mirror {record.id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        self._trim()
        return JobHandle(self.engine, live)

    async def _follow(self, live: LiveJob) -> None:
        try:
            await settle(self.service, live, await mirrored(self.bus, live))
        except Exception as exc:  # the bus or the journal failed: end the handle, say why
            live.finish(error=JobFailedError(f"job {live.job_id}: lost its event stream: {exc}"))
            self._mirrors.pop(live.job_id, None)

    def _trim(self) -> None:
        while len(self._mirrors) > KEEP:
            oldest = next((k for k, v in self._mirrors.items() if v.done), None)
            if oldest is None:
                return
            del self._mirrors[oldest]

    async def aclose(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        with contextlib.suppress(Exception):
            await asyncio.gather(*self._tasks, return_exceptions=True)


__all__ = ["FailedEvent", "Mirrors", "mirrored", "relay_state", "settle"]

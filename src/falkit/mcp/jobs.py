"""Jobs the server follows in the background, so a tool can answer before its job ends.

Chat hosts give a tool call about a minute. A job that takes longer keeps running here as an
asyncio task (which downloads and records it like any other), the tool answers with its id, and a
later get_job waits on the same task. Each task's progress events fan out to whichever tool calls
are waiting on it. If the server dies, the job is still in the journal and `falkit jobs resume`
(or get_job in a new server) finishes it.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from falkit.service.progress import ProgressCallback
from falkit.types import LogEvent, ProgressEvent

Work = Callable[[ProgressCallback], Awaitable[Any]]
EventSink = Callable[[ProgressEvent], Awaitable[None]]


@dataclass(eq=False)
class TrackedJob:
    """One background task: its key, the falkit job id once known, and who is listening."""

    key: str
    kind: str
    job_id: str | None = None
    task: asyncio.Task[Any] | None = None
    notes: list[str] = field(default_factory=list)
    last: ProgressEvent | None = None
    known: asyncio.Event = field(default_factory=asyncio.Event)
    listeners: set[asyncio.Queue[ProgressEvent]] = field(default_factory=set)

    @property
    def done(self) -> bool:
        return self.task is not None and self.task.done()

    @property
    def error(self) -> BaseException | None:
        """The exception the job ended with (None while running or after success)."""
        if self.task is None or not self.task.done() or self.task.cancelled():
            return None
        return self.task.exception()

    @property
    def result(self) -> Any:
        """The service's result object once the job succeeded, else None."""
        if not self.done or self.error is not None or self.task is None or self.task.cancelled():
            return None
        return self.task.result()

    def publish(self, event: ProgressEvent) -> None:
        """Record an event and hand it to every waiting tool call."""
        if event.job_id and self.job_id is None:
            self.job_id = event.job_id
            self.known.set()
        if isinstance(event, LogEvent) and not event.job_id:
            self.notes.append(event.message)  # said before the job existed (e.g. trigger word)
        self.last = event
        for queue in self.listeners:
            queue.put_nowait(event)


class JobTracker:
    """The server's background jobs, found by job id or by the key they were started under."""

    def __init__(self) -> None:
        self._jobs: dict[str, TrackedJob] = {}
        self._keys = itertools.count(1)

    def start(self, kind: str, work: Work, *, job_id: str | None = None) -> TrackedJob:
        """Run ``work(on_progress)`` in the background; without a job id yet, a key is made."""
        key = job_id or f"task-{next(self._keys)}"
        entry = TrackedJob(key=key, kind=kind, job_id=job_id)
        if job_id is not None:
            entry.known.set()
        entry.task = asyncio.create_task(self._run(entry, work), name=f"falkit-mcp-{key}")
        entry.task.add_done_callback(_retrieve)
        self._jobs[key] = entry
        return entry

    async def _run(self, entry: TrackedJob, work: Work) -> Any:
        try:
            return await work(entry.publish)
        finally:
            entry.known.set()  # wake anyone waiting for an id that will now never come

    def find(self, ref: str) -> TrackedJob | None:
        """A tracked job by its key or its falkit job id."""
        ref = ref.strip()
        if ref in self._jobs:
            return self._jobs[ref]
        return next((e for e in self._jobs.values() if e.job_id == ref), None)

    def running(self) -> list[TrackedJob]:
        return [e for e in self._jobs.values() if not e.done]

    async def wait(
        self,
        entry: TrackedJob,
        timeout: float,
        on_event: EventSink,
        *,
        until_submitted: bool = False,
    ) -> bool:
        """Wait up to ``timeout`` seconds for the job to end (or, ``until_submitted``, to have
        its falkit id), passing on its events; True if the job has ended.

        Leaving early (timeout, or the tool call being cancelled) never stops the job.
        """
        assert entry.task is not None
        stop: asyncio.Future[Any] = (
            asyncio.ensure_future(entry.known.wait()) if until_submitted else entry.task
        )
        queue: asyncio.Queue[ProgressEvent] = asyncio.Queue()
        entry.listeners.add(queue)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(0.0, timeout)
        try:
            if entry.last is not None:
                await on_event(entry.last)  # where it stands now, for a caller arriving late
            while not stop.done() and (remaining := deadline - loop.time()) > 0:
                await self._next(queue, stop, remaining, on_event)
            while not queue.empty():
                await on_event(queue.get_nowait())
        finally:
            entry.listeners.discard(queue)
            if stop is not entry.task:
                stop.cancel()
        return entry.task.done()

    @staticmethod
    async def _next(
        queue: asyncio.Queue[ProgressEvent],
        stop: asyncio.Future[Any],
        timeout: float,
        on_event: EventSink,
    ) -> None:
        getter = asyncio.ensure_future(queue.get())
        try:
            await asyncio.wait({getter, stop}, timeout=timeout, return_when="FIRST_COMPLETED")
        finally:
            if not getter.done():
                getter.cancel()
        if getter.done() and not getter.cancelled():
            await on_event(getter.result())

    async def aclose(self) -> None:
        """Stop following every job (they stay in the journal for `falkit jobs resume`)."""
        tasks = [e.task for e in self._jobs.values() if e.task is not None and not e.task.done()]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)


def _retrieve(task: asyncio.Task[Any]) -> None:
    """Mark a background failure as seen: it is reported through get_job, not the event loop."""
    if not task.cancelled():
        task.exception()

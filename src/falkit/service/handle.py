"""A job in flight as callers see it: its id, its events, its result, and a way to cancel it.

The engine keeps one :class:`LiveJob` per job it runs: the job's events in order (bounded),
its outcome, and what the follower knows (queue position, whether it started). Any number of
callers hold :class:`JobHandle` objects on it; each ``events()`` iterator starts from the first
event still kept (or after a given ``seq``), so a subscriber that arrives late misses nothing.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import dataclasses
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from falkit.errors import FalTimeoutError
from falkit.events import Event

if TYPE_CHECKING:
    from falkit.service.budget import Budget
    from falkit.service.engine import JobEngine
    from falkit.store import JobRecord
    from falkit.types import FalResponse, RequestHandle

#: Events kept per live job; past this the oldest are dropped (a final event is always kept).
MAX_EVENTS = 2000


@dataclass(eq=False)
class LiveJob:
    """Everything the engine knows about one job it runs."""

    job_id: str
    kind: str
    record: JobRecord | None = None
    estimate: float | None = None
    budgets: tuple[Budget, ...] = ()
    logs: bool = True
    _state: str = "pending"
    position: int | None = None
    started: bool = False
    cancel_requested: bool = False
    cancel_outcome: str | None = None
    hold_requested: bool = False
    request: RequestHandle | None = None
    task: asyncio.Task[None] | None = field(default=None, repr=False)
    events: list[Event] = field(default_factory=list, repr=False)
    dropped: int = 0
    _seqs: list[int] = field(default_factory=list, repr=False)
    _next_seq: int = 1
    _changed: asyncio.Event = field(default_factory=asyncio.Event, repr=False)
    _watchers: list[Callable[[str], object]] = field(default_factory=list, repr=False)
    sink: Callable[[Event], object] | None = field(default=None, repr=False)
    """Also given every event published (a cluster's event bus: falkit.distributed)."""
    outcome: asyncio.Future[Any] = field(init=False, repr=False)
    delivered: asyncio.Future[FalResponse] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        loop = asyncio.get_running_loop()
        self.outcome = loop.create_future()
        self.delivered = loop.create_future()

    @property
    def done(self) -> bool:
        return self.outcome.done()

    @property
    def state(self) -> str:
        return self._state

    @state.setter
    def state(self, value: str) -> None:
        if value != self._state:
            self._state = value
            for watcher in list(self._watchers):
                watcher(value)

    @property
    def last(self) -> Event | None:
        return self.events[-1] if self.events else None

    def publish(self, event: Event) -> Event:
        """Number the event (stamped with this job's id), keep it, and wake every subscriber."""
        if event.job_id != self.job_id:
            event = dataclasses.replace(event, job_id=self.job_id)
        numbered = event.numbered(self._next_seq)
        self._next_seq += 1
        self._keep(numbered)
        if self.sink is not None:
            self.sink(numbered)
        return numbered

    def relay(self, event: Event) -> None:
        """Keep an event numbered elsewhere (by the cluster worker running the job, read from
        the event bus) with its own seq; one not past the last kept is dropped."""
        if self._seqs and event.seq <= self._seqs[-1]:
            return
        self._next_seq = event.seq + 1
        self._keep(event)

    def _keep(self, numbered: Event) -> None:
        self.events.append(numbered)
        self._seqs.append(numbered.seq)
        if len(self.events) > MAX_EVENTS:
            cut = len(self.events) - MAX_EVENTS + MAX_EVENTS // 4
            del self.events[:cut]
            del self._seqs[:cut]
            self.dropped += cut
        self._wake()

    def finish(self, result: Any = None, error: BaseException | None = None) -> None:
        """Settle the outcome once (later calls are ignored) and wake subscribers."""
        if not self.outcome.done():
            if error is not None:
                self.outcome.set_exception(error)
                self.outcome.exception()  # retrieved: callers read it through result()
            else:
                self.outcome.set_result(result)
        self._wake()

    def _wake(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    def index_after(self, seq: int) -> int:
        """Position in ``events`` of the first event with a sequence number above ``seq``."""
        return bisect.bisect_right(self._seqs, seq)

    async def changed(self) -> None:
        await self._changed.wait()


class JobHandle:
    """A caller's view of a job the engine runs: ``job_id``, ``events()``, ``result()``,
    ``cancel()``. Cheap to make; any number may exist for one job."""

    def __init__(self, engine: JobEngine, live: LiveJob) -> None:
        self._engine = engine
        self._live = live

    def __repr__(self) -> str:
        return f"JobHandle({self.job_id!r}, state={self.state!r})"

    @property
    def job_id(self) -> str:
        return self._live.job_id

    @property
    def kind(self) -> str:
        return self._live.kind

    @property
    def state(self) -> str:
        """pending, submitting, queued, running, downloading, completed, failed, cancelled."""
        return self._live.state

    @property
    def done(self) -> bool:
        return self._live.done

    @property
    def started(self) -> bool:
        """Whether Fal has started running the job."""
        return self._live.started

    @property
    def position(self) -> int | None:
        """Place in Fal's queue while queued (0: next in line)."""
        return self._live.position

    @property
    def last_event(self) -> Event | None:
        return self._live.last

    def history(self) -> list[Event]:
        """The events kept so far, oldest first."""
        return list(self._live.events)

    @property
    def record(self) -> JobRecord | None:
        """The job's journal record as last written by the engine."""
        return self._live.record

    async def result(self, timeout: float | None = None) -> Any:
        """The job's result (GenerationResult, TrainingResult, …) or its error raised.

        With a timeout, FalTimeoutError after that many seconds; the job goes on.
        """
        if timeout is not None and timeout <= 0:
            raise ValueError("timeout must be positive")
        try:
            return await asyncio.wait_for(asyncio.shield(self._live.outcome), timeout)
        except TimeoutError:
            raise FalTimeoutError(
                f"job {self.job_id} is still running at Fal after {timeout:g}s; it goes on, "
                "and `falkit jobs resume` fetches its output if this process ends first",
                request_id=self._live.request.request_id if self._live.request else None,
            ) from None

    async def events(self, after: int = 0) -> AsyncIterator[Event]:
        """Every event with ``seq`` above ``after`` (all kept ones by default), then the new
        ones as they come, ending after the final one."""
        live = self._live
        index = live.index_after(after)
        last = after
        while True:
            if index < len(live.events) and live.events[index].seq <= last:
                index = live.index_after(last)  # old events were dropped meanwhile
            while index < len(live.events):
                event = live.events[index]
                index += 1
                last = event.seq
                yield event
                if event.final:
                    return
            if live.done and index >= len(live.events):
                return
            waiter = live.changed()
            await waiter
            index = live.index_after(last)

    async def wait_while(self, states: tuple[str, ...], timeout: float) -> None:
        """Wait (at most ``timeout`` seconds) while the job is in one of ``states``."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self.state in states and not self.done:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._live.changed(), remaining)

    def on_state(self, callback: Callable[[str], object]) -> None:
        """Call ``callback(state)`` on every change of state from now on (e.g. "downloading":
        Fal is done with the job and only falkit's own work is left)."""
        self._live._watchers.append(callback)

    def add_done_callback(self, callback: Callable[[BaseException | None], object]) -> None:
        """Call ``callback(error)`` once the job has ended (error None on success)."""

        def done(outcome: asyncio.Future[Any]) -> None:
            callback(None if outcome.cancelled() else outcome.exception())

        self._live.outcome.add_done_callback(done)

    def stop_unsent(self) -> bool:
        """Keep the job from being sent (it stays pending in the journal, for resume);
        False if its submit has begun (that goes on: see ``cancel``)."""
        live = self._live
        if live.state not in ("preparing", "pending") or live.done:
            return False
        live.hold_requested = True
        if live.task is not None:
            live.task.cancel()
            engine = self._engine  # a task cancelled before it ran must still end the job
            live.task.add_done_callback(lambda _: engine.held_unsent(live))
        return True

    async def cancel(self) -> str:
        """Cancel the job (at Fal if it was sent); Fal's word for the outcome."""
        return await self._engine.cancel(self.job_id)

"""falkit's progress events as MCP progress notifications (a 0-100 scale that only goes up)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from falkit.events import (
    BatchProgressEvent,
    CancelledEvent,
    CompletedEvent,
    DownloadingEvent,
    Event,
    FailedEvent,
    LogEvent,
    NoteEvent,
    QueuedEvent,
    StartedEvent,
    StepEvent,
)
from falkit.service.progress import parse_step

Report = Callable[[float, float | None, str | None], Awaitable[None]]
TOTAL = 100.0
_MAX_MESSAGE = 200


def describe(event: Event) -> tuple[float | None, str]:
    """Where an event puts the job on the 0-100 scale (None: no move) and what to say."""
    if isinstance(event, QueuedEvent):
        ahead = "next in line" if event.position == 0 else f"{event.position} ahead"  # as the CLI
        return 5.0, f"queued at Fal ({ahead})"
    if isinstance(event, StartedEvent):
        return 10.0, "running"
    if isinstance(event, StepEvent):
        return 10.0 + 80.0 * event.step / max(1, event.total), f"step {event.step}/{event.total}"
    if isinstance(event, DownloadingEvent):
        return 92.0, f"downloading {event.count} file(s)"
    if isinstance(event, CompletedEvent):
        return TOTAL, "done"
    if isinstance(event, FailedEvent):
        return None, f"failed: {event.error}"
    if isinstance(event, CancelledEvent):
        return None, "cancelled"
    if isinstance(event, LogEvent | NoteEvent):
        return None, event.message
    if isinstance(event, BatchProgressEvent):
        return 100.0 * event.finished / max(1, event.total), f"{event.done}/{event.total} done"
    return None, event.type


def _repeats_a_step(event: Event) -> bool:
    """A log line with a step counter: the StepEvent right after it says the same, better."""
    return isinstance(event, LogEvent) and parse_step(event.message) is not None


class ProgressReporter:
    """Sends each event as a notification; the value never goes down, as MCP asks."""

    def __init__(self, report: Report) -> None:
        self._report = report
        self._value = 0.0
        self._last: tuple[float, str] | None = None
        self.broken = False

    async def __call__(self, event: Event) -> None:
        if _repeats_a_step(event):
            return
        value, message = describe(event)
        if value is not None:
            self._value = max(self._value, value)
        message = message if len(message) <= _MAX_MESSAGE else message[: _MAX_MESSAGE - 1] + "…"
        if self.broken or self._last == (self._value, message):
            return
        self._last = (self._value, message)
        try:
            await self._report(self._value, TOTAL, message)
        except Exception:  # the client went away: the job goes on without notifications
            self.broken = True

"""Progress events: produced once here from Fal statuses, rendered by every front end.

Step counters are read tolerantly from log lines ("step 3/28", tqdm's "45%|###  | 9/20"); no
event depends on exact log text, and a line without a counter is just a log event.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass

from falkit.events import Event, LogEvent, ProgressEvent, QueuedEvent, StartedEvent, StepEvent
from falkit.types import Completed, InProgress, Queued, Status

ProgressCallback = Callable[[ProgressEvent], Awaitable[None] | None]

_COUNTER = re.compile(r"(?<![\d/.:-])(\d{1,6})\s*/\s*(\d{1,6})(?![\d/.:-])")
_PERCENT = re.compile(r"(?<![\d.])(\d{1,3}(?:\.\d+)?)\s*%")


def parse_step(message: str) -> tuple[int, int] | None:
    """(step, total) from a log line carrying a counter, or None.

    The last "n/total" pair wins (tqdm puts it after the bar); a bare percentage counts as n/100.
    Pairs that cannot be a counter (step > total, total 0) are ignored.
    """
    pairs = [(int(a), int(b)) for a, b in _COUNTER.findall(message)]
    pairs = [(n, t) for n, t in pairs if t > 0 and 0 <= n <= t]
    if pairs:
        return pairs[-1]
    match = _PERCENT.search(message)
    if match:
        pct = float(match.group(1))
        if 0 <= pct <= 100:
            return round(pct), 100
    return None


@dataclass
class EventMapper:
    """Turns a job's successive statuses into events, each transition reported once."""

    job_id: str
    started: bool = False
    last_position: int | None = None
    last_step: tuple[int, int] | None = None

    def events(self, status: Status) -> Iterator[ProgressEvent]:
        if isinstance(status, Queued):
            if status.position != self.last_position:
                self.last_position = status.position
                yield QueuedEvent(self.job_id, status.position)
            return
        if not self.started:
            self.started = True
            yield StartedEvent(self.job_id)
        if isinstance(status, InProgress | Completed):
            yield from self._logs(status)

    def _logs(self, status: InProgress | Completed) -> Iterator[ProgressEvent]:
        for entry in status.logs:
            yield LogEvent(self.job_id, entry.message, entry.level)
            step = parse_step(entry.message)
            if step is not None and step != self.last_step:
                self.last_step = step
                yield StepEvent(self.job_id, step[0], step[1])


async def emit(callback: ProgressCallback | None, event: Event) -> None:
    """Call a sync or async progress callback."""
    if callback is None:
        return
    outcome = callback(event)  # type: ignore[arg-type]
    if outcome is not None:
        await outcome

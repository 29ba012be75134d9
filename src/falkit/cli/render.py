"""Rendering progress events on stderr: a live line on a terminal, plain lines otherwise."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from falkit.events import (
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

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress, TaskID


class ProgressView:
    """One job's progress: queue position, step bar and elapsed time."""

    def __init__(self, console: Console, *, quiet: bool = False) -> None:
        self.console = console
        self.quiet = quiet
        self.job_id: str | None = None
        self.live = console.is_terminal and not quiet
        self.started_at = time.monotonic()
        self._progress: Progress | None = None
        self._task: TaskID | None = None

    def __enter__(self) -> ProgressView:
        if self.live:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                SpinnerColumn,
                TextColumn,
                TimeElapsedColumn,
            )

            self._progress = Progress(
                SpinnerColumn(),
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=self.console,
                transient=True,
            )
            self._progress.start()
            self._task = self._progress.add_task("submitting", total=None)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()

    def __call__(self, event: Event) -> None:
        if isinstance(event, NoteEvent):
            self._note(event.message)  # e.g. a trigger word added, a dataset uploaded
            return
        self.job_id = event.job_id
        text = describe(event)
        if self._progress is not None and self._task is not None:
            self._update_live(event, text)
        elif text and not self.quiet and not isinstance(event, LogEvent | StepEvent):
            elapsed = time.monotonic() - self.started_at
            self.console.print(f"[dim]{elapsed:5.1f}s[/] {text}")

    def _note(self, message: str) -> None:
        if self.quiet:
            return
        if self._progress is not None:
            self._progress.console.print(f"note: {message}")
        else:
            self.console.print(f"note: {message}")

    def _update_live(self, event: Event, text: str | None) -> None:
        assert self._progress is not None
        assert self._task is not None
        fields: dict[str, Any] = {}
        if isinstance(event, StepEvent):
            fields = {"total": event.total, "completed": event.step}
        if text and not isinstance(event, LogEvent):
            fields["description"] = text
        if fields:
            self._progress.update(self._task, **fields)


def describe(event: Event) -> str | None:
    """One short human line for an event."""
    if isinstance(event, QueuedEvent):
        ahead = "next in line" if event.position == 0 else f"{event.position} ahead"
        return f"queued at Fal ({ahead})"
    if isinstance(event, StartedEvent):
        return "running"
    if isinstance(event, StepEvent):
        return f"step {event.step}/{event.total}"
    if isinstance(event, LogEvent):
        return event.message
    if isinstance(event, DownloadingEvent):
        return f"downloading {event.count} image{'s' if event.count != 1 else ''}"
    if isinstance(event, CompletedEvent):
        return "completed"
    if isinstance(event, FailedEvent):
        return f"failed: {event.error}"
    if isinstance(event, CancelledEvent):
        return "cancelled"
    return None

"""Progress events: produced once by the service, rendered by every front end.

Each event is a small frozen dataclass with one stable JSON form, ``event.to_json()``: a
``type`` field, the job (or batch) it belongs to, its sequence number within that job, and its
data. An SSE stream sends that dict as it is (``id:`` is ``seq``); an MCP notification or a CLI
line describes it. One event per log line; notes (a trigger word added to the prompt, a LoRA
re-uploaded) and batch progress travel on the same channel.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, ClassVar


@dataclass(frozen=True)
class Event:
    """Base of every event. ``seq`` is given by the job's event log when it is published."""

    type: ClassVar[str] = "event"
    job_id: str
    seq: int = field(default=0, kw_only=True)

    def to_json(self) -> dict[str, Any]:
        """``{"type": …, "job_id": …, "seq": …, <data>}``: what SSE and MCP send."""
        data: dict[str, Any] = {"type": self.type}
        for item in dataclasses.fields(self):
            data[item.name] = _plain(getattr(self, item.name))
        return data

    def numbered(self, seq: int) -> Event:
        """This event with its place in the job's log."""
        return dataclasses.replace(self, seq=seq)

    @property
    def final(self) -> bool:
        """Whether this event ends its job's stream (completed, failed, cancelled)."""
        return False


def _plain(value: Any) -> Any:
    to_json = getattr(value, "to_json", None)
    if callable(to_json):
        return to_json()
    return value


@dataclass(frozen=True)
class QueuedEvent(Event):
    """Waiting in Fal's queue; ``position`` is 0 for next in line."""

    type: ClassVar[str] = "queued"
    position: int = 0
    request_id: str | None = None


@dataclass(frozen=True)
class StartedEvent(Event):
    """Fal started running the job."""

    type: ClassVar[str] = "started"


@dataclass(frozen=True)
class LogEvent(Event):
    """One log line from the running model."""

    type: ClassVar[str] = "log"
    message: str = ""
    level: str = "INFO"


@dataclass(frozen=True)
class StepEvent(Event):
    """A step counter read from a log line: ``step`` of ``total``."""

    type: ClassVar[str] = "step"
    step: int = 0
    total: int = 0


@dataclass(frozen=True)
class NoteEvent(Event):
    """Something falkit did on the user's behalf (a trigger word added, a file uploaded)."""

    type: ClassVar[str] = "note"
    message: str = ""
    level: str = "INFO"


@dataclass(frozen=True)
class DownloadingEvent(Event):
    """The output is in; its files are being downloaded and kept."""

    type: ClassVar[str] = "downloading"
    count: int = 0


@dataclass(frozen=True)
class CompletedEvent(Event):
    """Done: ``result`` is the service's result (GenerationResult, TrainingResult, …)."""

    type: ClassVar[str] = "completed"
    result: Any = None

    @property
    def final(self) -> bool:
        return True


@dataclass(frozen=True)
class FailedEvent(Event):
    """The job ended with an error (Fal's ``error_type`` when it gave one)."""

    type: ClassVar[str] = "failed"
    error: str = ""
    error_type: str | None = None

    @property
    def final(self) -> bool:
        return True


@dataclass(frozen=True)
class CancelledEvent(Event):
    """The job was cancelled; ``charged`` says whether Fal may still bill it (it had started)."""

    type: ClassVar[str] = "cancelled"
    charged: bool = False

    @property
    def final(self) -> bool:
        return True


@dataclass(frozen=True)
class BatchProgressEvent(Event):
    """Where a batch stands: jobs per state, money spent and committed, time left.

    ``queued`` and ``running`` are at Fal (together at most the batch's concurrency);
    ``downloading`` are done at Fal, their images being kept.

    ``job_id`` is the batch id (the batch's own event log).
    """

    type: ClassVar[str] = "batch_progress"
    total: int = 0
    pending: int = 0
    queued: int = 0
    running: int = 0
    downloading: int = 0
    done: int = 0
    failed: int = 0
    spent_usd: float = 0.0
    in_flight_usd: float = 0.0
    budget_usd: float | None = None
    budget_stopped: bool = False
    elapsed: float = 0.0
    eta_seconds: float | None = None

    @property
    def batch_id(self) -> str:
        return self.job_id

    @property
    def finished(self) -> int:
        return self.done + self.failed


ProgressEvent = (
    QueuedEvent
    | StartedEvent
    | LogEvent
    | StepEvent
    | NoteEvent
    | DownloadingEvent
    | CompletedEvent
    | FailedEvent
    | CancelledEvent
    | BatchProgressEvent
)

"""Events to and from the bus's rows: each event's own JSON form, and back to its type."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

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

_TYPES: dict[str, type[Event]] = {
    cls.type: cls
    for cls in (
        QueuedEvent, StartedEvent, LogEvent, StepEvent, NoteEvent, DownloadingEvent,
        CompletedEvent, FailedEvent, CancelledEvent, BatchProgressEvent,
    )
}  # fmt: skip
_FIELDS = {name: {f.name for f in dataclasses.fields(cls)} for name, cls in _TYPES.items()}


def encode(event: Event, seq: int) -> str:
    """The event's JSON with its place in the job's log across the cluster."""
    data = event.to_json()
    data["seq"] = seq
    return json.dumps(data, default=str, separators=(",", ":"))


def decode(body: dict[str, Any]) -> Event:
    """The typed event again (a completed event's result stays its JSON: the caller may read
    the journal for a typed one); an unknown type becomes a note, never an error."""
    kind = str(body.get("type", ""))
    cls = _TYPES.get(kind)
    if cls is None:
        return NoteEvent(str(body.get("job_id", "")), f"{kind}: {body}", seq=int(body["seq"]))
    names = _FIELDS[kind]
    return cls(**{key: value for key, value in body.items() if key in names})

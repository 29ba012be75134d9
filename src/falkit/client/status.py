"""Fal's queue status bodies as typed statuses, and log de-duplication.

Fal has three statuses: IN_QUEUE (queue_position), IN_PROGRESS (logs), COMPLETED (logs, metrics,
and error/error_type when the job failed). Parsing is lenient about extra or missing optional
fields and strict about the status value: anything else is an error that says what arrived.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from falkit.errors import ApiError
from falkit.types import Completed, InProgress, LogEntry, Queued, Status

KNOWN = ("IN_QUEUE", "IN_PROGRESS", "COMPLETED")


def parse_logs(raw: Any) -> tuple[LogEntry, ...]:
    """Log entries from a status body's ``logs`` (null when logs were not asked for)."""
    if not isinstance(raw, list):
        return ()
    entries = []
    for item in raw:
        if isinstance(item, dict):
            entries.append(
                LogEntry(
                    message=str(item.get("message", "")),
                    timestamp=str(item.get("timestamp") or ""),
                    level=str(item.get("level") or "INFO"),
                    source=str(item.get("source") or "USER"),
                )
            )
        elif isinstance(item, str):
            entries.append(LogEntry(message=item))
    return tuple(entries)


def _optional_str(value: Any) -> str | None:
    return None if value is None else str(value)


def parse_status(body: Any, *, request_id: str = "") -> Status:
    """The typed status of a status body (polling or one SSE event)."""
    if not isinstance(body, dict):
        raise ApiError(
            f"Fal sent a status that is not a JSON object for request {request_id}: "
            f"{str(body)[:200]!r}",
            request_id=request_id or None,
            body=body,
        )
    rid = str(body.get("request_id") or request_id)
    value = body.get("status")
    if value == "IN_QUEUE":
        position = body.get("queue_position")
        number = int(position) if isinstance(position, int | float) else 0
        return Queued(position=number, request_id=rid)
    if value == "IN_PROGRESS":
        return InProgress(logs=parse_logs(body.get("logs")), request_id=rid)
    if value == "COMPLETED":
        metrics = body.get("metrics")
        return Completed(
            logs=parse_logs(body.get("logs")),
            metrics=dict(metrics) if isinstance(metrics, dict) else {},
            error=_optional_str(body.get("error")),
            error_type=_optional_str(body.get("error_type")),
            request_id=rid,
        )
    raise ApiError(
        f"Fal sent an unknown status {value!r} for request {rid or '?'}; "
        f"expected one of {', '.join(KNOWN)}",
        request_id=rid or None,
        body=body,
    )


class LogWindow:
    """Remembers log lines already reported; Fal's logs are a moving window, never an index."""

    def __init__(self) -> None:
        self._seen: set[tuple[str, str]] = set()

    def fresh(self, status: Status) -> Status:
        """The status carrying only the log lines not reported before."""
        if isinstance(status, Queued):
            return status
        new = []
        for entry in status.logs:
            if entry.key not in self._seen:
                self._seen.add(entry.key)
                new.append(entry)
        return dataclasses.replace(status, logs=tuple(new))

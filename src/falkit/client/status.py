"""Fal's queue status bodies as typed statuses, log de-duplication, and key scrubbing.

Fal has three statuses: IN_QUEUE (queue_position), IN_PROGRESS (logs), COMPLETED (logs, metrics,
and error/error_type when the job failed). Parsing is lenient about extra or missing optional
fields and strict about the status value: anything else is an error that says what arrived.

Everything Fal sends back is text written by others (a model's logs, its error, its output), and
a careless app could echo the caller's key into it. :class:`Scrubber` masks the key in such text
where it enters falkit (statuses here, results and errors in queue.py and http.py), so nothing
downstream — events, the journal, image metadata, MCP answers, the CLI — ever holds it.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from falkit.errors import ApiError
from falkit.types import Completed, InProgress, LogEntry, Queued, Status

KNOWN = ("IN_QUEUE", "IN_PROGRESS", "COMPLETED")
#: Parts of a ``key_id:key_secret`` key this long or longer are masked on their own too.
MIN_SECRET_PART = 8


class Scrubber:
    """Masks an API key in data from upstream: the whole key, and each long ``:``-separated
    part of it (an app may echo just the secret); in strings, dict keys and values, lists."""

    def __init__(self, key: str | None, mask: str) -> None:
        parts = {key, *(key or "").split(":")} if key else set()
        self._secrets = sorted(
            (p for p in parts if p and (p == key or len(p) >= MIN_SECRET_PART)),
            key=len,
            reverse=True,
        )
        self._mask = mask

    def text(self, value: str) -> str:
        for secret in self._secrets:
            if secret in value:
                value = value.replace(secret, self._mask)
        return value

    def __call__(self, value: Any) -> Any:
        """``value`` with every secret masked (a copy where something changed)."""
        if not self._secrets:
            return value
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {self(k): self(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self(v) for v in value]
        return value


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


def parse_status(body: Any, *, request_id: str = "", scrub: Scrubber | None = None) -> Status:
    """The typed status of a status body (polling or one SSE event); ``scrub`` masks the key
    in it first (logs, error, metrics: anything the app wrote)."""
    if scrub is not None:
        body = scrub(body)
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

"""Jobs that outlive the emulator (``falkit emulator --data DIR``): an append-only journal.

``DIR/jobs.jsonl`` gets one line when a job is submitted and one when it ends (its outcome,
logs and inference time). On start the last line per request id wins:

* a finished job comes back COMPLETED, with the same status, logs, metrics and result (its file
  URLs follow the listener that is asked, see :func:`rebase`);
* a job that was still queued or running when the previous process stopped (or was killed)
  comes back COMPLETED with an error (:data:`STOPPED`), so a client polling it gets an answer
  instead of a 404 or a job that never ends. It is not run again.

Sync runs (fal.run) have no request to look up later and are not journaled; their files are kept
like every other (see :class:`~falkit.emulator.storage.FileStore`). A truncated last line (a
killed process) is skipped.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from falkit.emulator.models import Outcome, failure

if TYPE_CHECKING:
    from falkit.emulator.engine import Job

log = logging.getLogger("falkit.emulator")
JOURNAL = "jobs.jsonl"
STOPPED = ("The emulator stopped before this request finished", "internal_server_error")
"""The error (text, type) of a job that had not ended when its emulator stopped."""


@dataclass
class Restored:
    """A job as a previous run left it."""

    id: str
    endpoint_id: str
    cdn_base: str
    outcome: Outcome
    logs: list[dict[str, Any]] = field(default_factory=list)
    inference_time: float | None = None
    payload: dict[str, Any] | None = None
    received_at: float = 0.0
    started_at: float = 0.0
    ended_at: float | None = None


def job_record(job: Job) -> dict[str, Any]:
    """A job's journal line: what it was, and, once it ended, how."""
    record: dict[str, Any] = {
        "id": job.id,
        "endpoint": job.endpoint.endpoint_id,
        "cdn_base": job.ctx.cdn_base,
        "payload": job.payload,
        "received_at": job.received_at,
    }
    if job.outcome is not None:
        took = None
        if job.started is not None and job.finished is not None:
            took = round(job.finished - job.started, 4)
        record.update(
            outcome=outcome_record(job.outcome),
            logs=[line.entry for line in job.logs],
            inference_time=took,
            started_at=job.wall_start,
            ended_at=job.ended_at,
        )
    return record


def outcome_record(outcome: Outcome) -> dict[str, Any]:
    return {
        "status_code": outcome.status_code,
        "body": outcome.body,
        "error": outcome.error,
        "error_type": outcome.error_type,
        "billable_units": outcome.billable_units,
        "extra_headers": outcome.extra_headers,
    }


def outcome_from(record: dict[str, Any]) -> Outcome:
    return Outcome(
        int(record["status_code"]),
        record["body"],
        record.get("error"),
        record.get("error_type"),
        record.get("billable_units"),
        dict(record.get("extra_headers") or {}),
    )


class Journal:
    """Appends job records to ``folder/jobs.jsonl``; reads them back with :meth:`load`."""

    def __init__(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / JOURNAL
        self._out: TextIO | None = None

    def write(self, job: Job) -> None:
        """Journal ``job`` as it is now (call on submit and when it ends)."""
        if self._out is None:
            self._out = self.path.open("a", encoding="utf-8")
        self._out.write(json.dumps(job_record(job), separators=(",", ":")) + "\n")
        self._out.flush()

    def load(self) -> list[Restored]:
        """Every journaled job, in submit order, as it ended (or as stopped)."""
        latest: dict[str, dict[str, Any]] = {}
        try:
            lines = self.path.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            return []
        for line in lines:
            try:
                record = json.loads(line)
                latest[str(record["id"])] = record
            except (ValueError, TypeError, KeyError):
                log.warning("skipping an unreadable line of %s", self.path)
        return [job for job in map(_restored, latest.values()) if job is not None]

    def close(self) -> None:
        if self._out is not None:
            self._out.close()
            self._out = None


def _restored(record: dict[str, Any]) -> Restored | None:
    try:
        ended = record.get("outcome")
        outcome = outcome_from(ended) if ended is not None else failure(500, *STOPPED)
        took, ended_at = record.get("inference_time"), record.get("ended_at")
        payload = record.get("payload")
        return Restored(
            str(record["id"]),
            str(record["endpoint"]),
            str(record["cdn_base"]),
            outcome,
            logs=list(record.get("logs") or []),
            inference_time=None if took is None else float(took),
            payload=dict(payload) if isinstance(payload, dict) else None,
            received_at=float(record.get("received_at") or 0.0),
            started_at=float(record.get("started_at") or 0.0),
            ended_at=None if ended_at is None else float(ended_at),
        )
    except (ValueError, TypeError, KeyError):
        return None


def rebase(value: Any, old: str, new: str) -> Any:
    """``value`` with every string starting ``old + "/files/"`` moved under ``new``.

    A result keeps the file URLs of the listener it was made on; after a restart on another
    port (or when asked through another host) they are rewritten to the one that is asked.
    """
    if old == new:
        return value
    prefix = f"{old}/files/"
    if isinstance(value, str):
        return f"{new}/files/{value[len(prefix) :]}" if value.startswith(prefix) else value
    if isinstance(value, dict):
        return {key: rebase(item, old, new) for key, item in value.items()}
    if isinstance(value, list):
        return [rebase(item, old, new) for item in value]
    return value

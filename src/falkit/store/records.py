"""What the store hands back: small frozen records, free of any database session.

This module imports nothing heavy, so front ends can name these types cheaply.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, Literal, get_args

JobStatus = Literal[
    "pending",  # row written, not yet submitted
    "submitting",  # submit sent, answer not yet known
    "submitted",  # Fal gave a request id; queued
    "running",
    "completed",
    "failed",
    "cancelled",
    "unknown",  # a submit may have reached Fal but no request id came back: never re-sent
]
JOB_STATUSES: tuple[str, ...] = get_args(JobStatus)
UNFINISHED: tuple[JobStatus, ...] = ("pending", "submitting", "submitted", "running")
FINISHED: tuple[JobStatus, ...] = ("completed", "failed", "cancelled", "unknown")
JOB_KINDS: tuple[str, ...] = ("image", "training")


@dataclass(frozen=True)
class NewImage:
    """An image downloaded and verified, to be recorded with its completed job."""

    index: int
    url: str
    local_path: str
    sha256: str
    size_bytes: int
    width: int
    height: int
    content_type: str
    nsfw: bool | None = None


@dataclass(frozen=True)
class NewJob:
    """A job to journal in bulk (``JobStore.create_jobs``): what ``create_job`` takes."""

    kind: str
    model: str
    endpoint_id: str
    arguments: dict[str, Any]
    estimated_cost: float | None
    batch_id: str | None = None
    batch_index: int | None = None
    job_id: str | None = None


@dataclass(frozen=True)
class ImageRecord:
    """One output image of a job, as kept on disk."""

    id: str
    job_id: str
    index: int
    url: str
    local_path: str
    sha256: str
    size_bytes: int
    width: int
    height: int
    content_type: str
    nsfw: bool | None
    created_at: dt.datetime


@dataclass(frozen=True)
class JobRecord:
    """Everything remembered about one job: what was asked, what Fal said, what it cost."""

    id: str
    kind: str
    model: str
    endpoint_id: str
    arguments: dict[str, Any]
    status: JobStatus
    request_id: str | None
    status_url: str | None
    response_url: str | None
    cancel_url: str | None
    seed: int | None
    estimated_cost: float | None
    cost_usd: float | None
    billable_units: float | None
    timings: dict[str, Any] | None
    output: dict[str, Any] | None
    error: str | None
    error_type: str | None
    queue_position: int | None
    batch_id: str | None
    batch_index: int | None
    created_at: dt.datetime
    submitted_at: dt.datetime | None
    completed_at: dt.datetime | None
    updated_at: dt.datetime
    images: tuple[ImageRecord, ...] = ()
    submitter: str | None = None  # who claimed the submit (last, so old constructors work)
    starred: bool = False  # marked in the web page's gallery

    @property
    def prompt(self) -> str | None:
        """The prompt that was asked for, if the job had one."""
        value = self.arguments.get("prompt")
        return value if isinstance(value, str) else None

    @property
    def finished(self) -> bool:
        return self.status in FINISHED


@dataclass(frozen=True)
class LoraRecord:
    """A named LoRA in the library: where its weights are and how to trigger it."""

    name: str
    url: str
    trigger_word: str | None
    config_url: str | None
    local_path: str | None
    job_id: str | None
    params: dict[str, Any]
    created_at: dt.datetime


@dataclass(frozen=True)
class BatchRecord:
    """A bulk generation: its spec, where it writes, and the budget it must stay under."""

    id: str
    spec: dict[str, Any]
    out_dir: str | None
    budget_usd: float | None
    total_jobs: int
    created_at: dt.datetime

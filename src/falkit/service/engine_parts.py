"""What the job engine is made of besides its loop: options, the cluster seam, and the small
rules it applies (which statuses mean a job ran, how a submit on the wire is let finish, how a
job's budgets are closed). Kept apart so engine.py reads as the life of a job.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from falkit.errors import FalkitError, JobFailedError, SubmitUncertainError, ValidationError
from falkit.service.follow import FollowOptions
from falkit.types import Completed, FalResponse, InProgress, RequestHandle, Status

if TYPE_CHECKING:
    from falkit.client import RetryPolicy
    from falkit.service.budget import Budget
    from falkit.service.handle import JobHandle, LiveJob
    from falkit.store import JobRecord

UNCERTAIN_HINT = (
    "the submit may have reached Fal, so it was not sent again; `falkit jobs reconcile` "
    "looks it up in Fal's request history: reattached if it arrived, else sent once"
)
CANCEL_WORDS = ("cancelled", "canceled", "request_cancelled")


class Dispatcher(Protocol):
    """Runs this engine's jobs on a cluster's workers instead (falkit.distributed): the
    engine prepares and journals a job, then ``run`` has a worker take it and mirrors the
    job's events into its handle until it ends. Deliveries and cancels for jobs that run
    elsewhere are passed on to whichever worker runs them."""

    async def run(self, live: LiveJob) -> None: ...

    def deliver(self, request_id: str, response: FalResponse) -> bool: ...

    def follow_now(self, request_id: str) -> bool: ...

    async def cancel(self, live: LiveJob) -> str: ...

    async def watch(self, record: JobRecord) -> JobHandle:
        """A handle on a job that runs (or ran) anywhere in the cluster, fed by its bus."""
        ...


@dataclass(frozen=True)
class EngineOptions:
    """How much the engine does at once."""

    follow: FollowOptions = field(default_factory=FollowOptions)
    connections: int = 16
    """Connections for short requests (submits, polls, results, downloads); streams have
    their own pool of ``follow.stream_cap``."""
    retry: RetryPolicy | None = None
    """How hard each request is tried before the engine's own waiting takes over."""
    submit_lanes: int = 16
    """POSTs on the wire at once (a crash can catch at most this many mid-submit)."""
    finish_slots: int = 8
    """Jobs downloading their output at once."""
    keep_finished: int = 1000
    """Finished jobs whose events stay readable by late subscribers."""
    submit_grace: float = 30.0
    """When a job's task is cancelled, a POST already on the wire may finish for this long."""
    # ---- webhooks (falkit serve with FALKIT_PUBLIC_URL) ----
    webhook_url: str | None = None
    """Sent with every submit (``?fal_webhook=``). A job submitted with it is not followed at
    first: its webhook delivery (``deliver``) usually finishes it with no status or result
    call; only after ``webhook_grace`` seconds without one (or ``follow_now``) is it followed
    like any other job."""
    webhook_grace: float = 120.0


WARMED: list[asyncio.Future[None]] = []


def prewarm() -> None:
    """Load what finishing a job needs (Pillow and its codecs) in a thread while the first
    job waits at Fal, so a one-off `falkit generate` does not pay for it after the job."""
    if not WARMED:
        WARMED.append(asyncio.get_running_loop().run_in_executor(None, load_image_codecs))


def load_image_codecs() -> None:
    from PIL import Image

    Image.init()


def ran(status: Status) -> bool:
    """The status shows the job ran: running, or completed with an output (a job cancelled
    or failed straight from the queue never ran)."""
    return isinstance(status, InProgress) or (isinstance(status, Completed) and not status.failed)


def reserve_all(
    budgets: tuple[Budget, ...], job_id: str, estimate: float | None, what: str
) -> tuple[Budget, ...]:
    """Hold a job's estimate in every budget, or in none (BudgetExceededError)."""
    done: list[Budget] = []
    try:
        for budget in budgets:
            budget.reserve(job_id, estimate, what)
            done.append(budget)
    except BaseException:
        for budget in done:
            budget.release(job_id)
        raise
    return budgets


def revise_all(live: LiveJob, response: FalResponse) -> None:
    """The job's answer says what Fal billed: every budget counts that from now on."""
    from falkit.catalog import BY_ENDPOINT
    from falkit.service.generate import recorded_cost

    spec = BY_ENDPOINT.get(live.record.endpoint_id) if live.record is not None else None
    billed = recorded_cost(spec, response, None)
    if billed is not None:
        for budget in live.budgets:
            budget.revise(live.job_id, billed)


def settle_all(live: LiveJob, cost: float | None) -> None:
    for budget in live.budgets:
        budget.settle(live.job_id, cost)


def close_budgets(live: LiveJob, exc: FalkitError) -> None:
    """Failed at Fal or never sent: not billed. Unknown or no longer followed: may be."""
    maybe_billed = isinstance(exc, SubmitUncertainError) or (
        live.record is not None
        and live.record.request_id is not None
        and not isinstance(exc, JobFailedError)
    )
    for budget in live.budgets:
        budget.hold(live.job_id) if maybe_billed else budget.release(live.job_id)


async def uninterrupted(post: asyncio.Future[RequestHandle], grace: float) -> RequestHandle:
    """Await a submit; if cancelled meanwhile, let the POST on the wire finish first (for at
    most ``grace`` seconds), so its request id is journaled, then stop."""
    try:
        return await asyncio.shield(post)
    except asyncio.CancelledError:
        with contextlib.suppress(Exception, asyncio.CancelledError):
            await asyncio.wait_for(post, grace)
        raise


def error_type(exc: Exception) -> str | None:
    if isinstance(exc, ValidationError):
        return "validation_error"
    value = getattr(exc, "error_type", None)
    return value if isinstance(value, str) else None

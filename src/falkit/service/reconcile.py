"""Reconciling ``unknown`` jobs with Fal's request history, so none stays unknown for long.

A job is ``unknown`` when its submit may have reached Fal but no request id came back: the
answer was lost (a dropped connection, a timeout after sending), or the process died while
its POST was on the wire. Sending it again could pay twice; never sending it could lose it.
Fal's platform API keeps a request history per endpoint with each request's input
(:mod:`falkit.client.platform`), which settles the question:

* **found** — a request of the job's endpoint, sent within the job's time window, whose input
  matches the job's journaled arguments, and whose request id no other job holds: the job
  gets that request id (``set_submitted``) and is reattached like any submitted job.
* **released** — nothing matches, the history was read completely, and the job's submit is
  older than ``settings.reconcile_after`` (FALKIT_RECONCILE_AFTER, 600 s by default: the
  history may lag, and may list a request only once it has ended): the submit never arrived,
  so the job goes back to ``pending`` and is submitted once (a batch's job waits for
  ``falkit batch resume``, which keeps the batch's budget).
* **waiting** — anything less certain (too recent; older than ``HISTORY_KEPT``, 30 days, which
  Fal's history may no longer cover; the history unreadable or cut short; requests in the
  window listed without their input): the job stays ``unknown`` and a later ``falkit jobs
  reconcile`` looks again. Doubt never sends a job.

The time window is from the job's creation to its last update (when it was marked
``unknown``), widened by ``MARGIN`` for clock skew between this machine and Fal. Inputs match
when every argument the job sent is in the request's input with an equal value (Fal may add
defaults). Several unknown jobs with the same arguments take matching requests oldest first.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from falkit.errors import FalkitError, SubmitUncertainError, ValidationError
from falkit.service.submitter import is_alive

if TYPE_CHECKING:
    from falkit.client import FalClient
    from falkit.client.platform import History, HistoryEntry
    from falkit.service.core import FalService
    from falkit.store import JobRecord, JobStore

MARGIN = dt.timedelta(minutes=5)
"""Clock skew allowed between this machine and Fal's history on either side of a window."""
MAX_JOBS = 100_000
HISTORY_KEPT = dt.timedelta(days=30)
"""How far back Fal's request history is trusted to be complete: an unknown job older than
this is never taken as "never arrived" (found is still found)."""
UNKNOWN_HINT = (
    "the submit may have reached Fal, so it was not sent again; "
    "`falkit jobs reconcile` looks it up in Fal's request history: reattached if it "
    "arrived, else sent once"
)

Verdict = Literal["found", "released", "waiting"]


@dataclass(frozen=True)
class Reconciled:
    """What reconciling did with one unknown job."""

    job_id: str
    verdict: Verdict
    message: str
    record: JobRecord
    request_id: str | None = None


async def caught_submitting(store: JobStore, job: JobRecord) -> FalkitError:
    """A job found ``submitting`` by another process: left alone while its submitter lives
    (a slow submit), else marked ``unknown`` for reconciling (its POST may have arrived)."""
    if is_alive(job.submitter):
        from falkit.service.jobs import SubmitInProgressError

        return SubmitInProgressError(
            f"job {job.id} is being submitted by a running process ({job.submitter}); left to it"
        )
    message = f"interrupted while submitting; {UNKNOWN_HINT}"
    await store.fail_job(job.id, error=message, status="unknown")
    return SubmitUncertainError(f"job {job.id} {message}")


async def settle_batch(service: FalService, batch_id: str) -> list[Reconciled]:
    """Before a batch runs again: its jobs caught ``submitting`` by a dead process become
    ``unknown``, then its unknown jobs are reconciled (found ones are followed by the run,
    released ones submitted by it)."""
    store = await service.store()
    for job in await store.list_jobs(status="submitting", batch_id=batch_id, limit=MAX_JOBS):
        await caught_submitting(store, job)
    return await reconcile(service, batch_id=batch_id)


async def reconcile(
    service: FalService,
    *,
    kind: str | None = None,
    batch_id: str | None = None,
    job_id: str | None = None,
    now: dt.datetime | None = None,
) -> list[Reconciled]:
    """Look every ``unknown`` job (of ``kind``, ``batch_id`` or just ``job_id``, if given) up
    in Fal's request history, and place it: found, released or waiting (module docstring)."""
    store = await service.store()
    unknown = await store.list_jobs(status="unknown", kind=kind, batch_id=batch_id, limit=MAX_JOBS)
    unknown = [j for j in unknown if j.request_id is None and job_id in (None, j.id)]
    if not unknown:
        return []
    client = service.client()
    current = now or dt.datetime.now(dt.UTC)
    delay = dt.timedelta(seconds=client.settings.reconcile_after)
    by_endpoint: dict[str, list[JobRecord]] = defaultdict(list)
    for job in sorted(unknown, key=lambda job: (job.created_at, job.id)):
        by_endpoint[job.endpoint_id].append(job)
    limits = _Limits(cutoff=current - delay, oldest=current - HISTORY_KEPT)
    done: list[Reconciled] = []
    for endpoint_id, jobs in by_endpoint.items():
        done += await _endpoint(store, client, endpoint_id, jobs, limits)
    return done


@dataclass(frozen=True)
class _Limits:
    """Only a job last updated between ``oldest`` and ``cutoff`` may be released."""

    cutoff: dt.datetime
    oldest: dt.datetime


async def _endpoint(
    store: JobStore, client: FalClient, endpoint_id: str, jobs: list[JobRecord], limits: _Limits
) -> list[Reconciled]:
    """Reconcile the unknown jobs of one endpoint against one read of its history."""
    start = min(job.created_at for job in jobs) - MARGIN
    end = max(job.updated_at for job in jobs) + MARGIN  # what came later cannot be theirs
    try:
        history = await client.platform.request_history(endpoint_id, start=start, end=end)
    except FalkitError as exc:
        why = f"Fal's request history could not be read ({exc})"
        return [_waiting(job, why) for job in jobs]
    taken: set[str] = set()
    done: list[Reconciled] = []
    for job in jobs:
        entry = await _match(store, job, history, taken)
        if entry is None:
            done.append(await _missing(store, job, history, limits))
            continue
        taken.add(entry.request_id)
        handle = client.handle(job.endpoint_id, entry.request_id)
        record = await store.set_submitted(
            job.id,
            request_id=entry.request_id,
            status_url=handle.status_url,
            response_url=handle.response_url,
            cancel_url=handle.cancel_url,
        )
        message = f"job {job.id} reached Fal as request {entry.request_id}; reattached"
        done.append(Reconciled(job.id, "found", message, record, entry.request_id))
    return done


async def _match(
    store: JobStore, job: JobRecord, history: History, taken: set[str]
) -> HistoryEntry | None:
    """The oldest request in the history that can only be this job's submit."""
    candidates = [
        entry
        for entry in history.entries
        if entry.request_id not in taken
        and entry.endpoint_id in (None, job.endpoint_id)
        and entry.payload is not None
        and _in_window(entry, job)
        and same_input(job.arguments, entry.payload)
    ]
    candidates.sort(key=lambda entry: entry.sent_at or dt.datetime.max.replace(tzinfo=dt.UTC))
    for entry in candidates:
        if await _held_by_other(store, entry.request_id, job.id):
            taken.add(entry.request_id)
            continue
        return entry
    return None


async def _held_by_other(store: JobStore, request_id: str, job_id: str) -> bool:
    """Whether another journaled job already holds this request id."""
    try:
        holder = await store.get_job(request_id)
    except ValidationError:  # an ambiguous reference: count it as held
        return True
    return holder is not None and holder.id != job_id and holder.request_id == request_id


async def _missing(
    store: JobStore, job: JobRecord, history: History, limits: _Limits
) -> Reconciled:
    """No request of the history is this job's: release it when that is certain."""
    if not history.complete:
        return _waiting(job, "Fal's request history has more pages than were read")
    if any(entry.payload is None and _in_window(entry, job) for entry in history.entries):
        return _waiting(job, "Fal's request history lists requests without their input")
    if job.updated_at > limits.cutoff:
        return _waiting(job, _too_recent(job, limits.cutoff))
    if job.updated_at < limits.oldest:
        return _waiting(
            job, "older than Fal's request history is known to keep; check the dashboard"
        )
    record = await store.release_unknown(job.id)
    if record.status != "pending":
        return _waiting(record, f"it is {record.status} now")
    then = "`falkit batch resume` sends it" if job.batch_id else "it is sent once"
    message = f"job {job.id} never reached Fal (not in its request history); {then}"
    return Reconciled(job.id, "released", message, record)


def _too_recent(job: JobRecord, cutoff: dt.datetime) -> str:
    wait = (job.updated_at - cutoff).total_seconds()
    return f"too recent to be sure it never arrived: look again in {max(1, round(wait))} s"


def _waiting(job: JobRecord, why: str) -> Reconciled:
    return Reconciled(job.id, "waiting", f"job {job.id} stays unknown: {why}", job)


def _in_window(entry: HistoryEntry, job: JobRecord) -> bool:
    if entry.sent_at is None:
        return True  # the history does not say when: it may be this job's
    return job.created_at - MARGIN <= entry.sent_at <= job.updated_at + MARGIN


def same_input(sent: Any, seen: Any) -> bool:
    """Whether ``seen`` (Fal's record of an input) holds everything in ``sent`` (what the job
    sent): every key with an equal value, extra keys allowed (defaults Fal filled in), a null
    sent value matching a missing one; numbers compare by value, booleans only as booleans."""
    if isinstance(sent, dict):
        if not isinstance(seen, dict):
            return False
        return all(
            (value is None and seen.get(key) is None)
            or (key in seen and same_input(value, seen[key]))
            for key, value in sent.items()
        )
    if isinstance(sent, list):
        return (
            isinstance(seen, list)
            and len(sent) == len(seen)
            and all(same_input(a, b) for a, b in zip(sent, seen, strict=True))
        )
    if isinstance(sent, bool) or isinstance(seen, bool):
        return type(sent) is type(seen) and sent == seen
    if isinstance(sent, int | float) and isinstance(seen, int | float):
        return sent == seen
    return type(sent) is type(seen) and bool(sent == seen)

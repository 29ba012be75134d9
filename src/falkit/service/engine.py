"""The job engine: one long-lived runner of jobs under every front end.

Starting a job returns a :class:`~falkit.service.handle.JobHandle` at once; the engine then
prepares it (uploads, if any), journals it, submits it once, follows it, and finishes it
(downloads, records) in a task of its own. The CLI, the MCP server, batches and resume all run
on it, so job tracking, budgets and event fan-out exist once.

Journal before waiting: a job's row exists before its POST; it is marked ``submitting``
(naming this process) right before the POST and gets its request id the moment Fal answers.
A job with a request id is only ever reattached to, never submitted again. POSTs go out
through a few lanes (``submit_lanes``); a POST on the wire is allowed to finish even when the
job's task is cancelled (Ctrl-C, the service closing), so its request id is journaled.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any

from falkit.errors import (
    ApiError,
    FalkitError,
    JobCancelledError,
    JobFailedError,
    LookupFailedError,
    RateLimitedError,
    SubmitUncertainError,
    TransportError,
    ValidationError,
)
from falkit.events import (
    CancelledEvent,
    CompletedEvent,
    Event,
    FailedEvent,
    QueuedEvent,
)
from falkit.service.engine_parts import (
    CANCEL_WORDS,
    UNCERTAIN_HINT,
    Dispatcher,
    EngineOptions,
    close_budgets,
    error_type,
    prewarm,
    ran,
    reserve_all,
    revise_all,
    settle_all,
    uninterrupted,
)
from falkit.service.follow import Follower, with_retries
from falkit.service.handle import JobHandle, LiveJob
from falkit.service.progress import EventMapper
from falkit.service.submitter import submitter_id
from falkit.types import FalResponse, Queued, RequestHandle, Status

if TYPE_CHECKING:
    from falkit.client import FalClient
    from falkit.service.budget import Budget
    from falkit.store import JobRecord, JobStatus, JobStore

__all__ = [
    "UNCERTAIN_HINT",
    "Dispatcher",
    "EngineOptions",
    "Finish",
    "JobEngine",
    "Prepare",
    "reserve_all",
]

logger = logging.getLogger("falkit.engine")

Emit = Callable[[Event], Event]
Prepare = Callable[[Emit], Awaitable["JobRecord"]]
Finish = Callable[["JobRecord", FalResponse, Emit], Awaitable[Any]]


class JobEngine:
    """Runs jobs: prepare, journal, submit once, follow, finish. See the module docstring."""

    def __init__(
        self, client: FalClient, store: JobStore, options: EngineOptions | None = None
    ) -> None:
        self.client = client
        self.store = store
        self.options = options or EngineOptions()
        self.follower = Follower(client, self.options.follow)
        self._live: dict[str, LiveJob] = {}
        self._finished: OrderedDict[str, LiveJob] = OrderedDict()
        self._by_request: dict[str, str] = {}
        self._lanes = asyncio.Semaphore(self.options.submit_lanes)
        self._hooked: dict[str, asyncio.Event] = {}  # job id -> set to follow it now
        self._finishing = asyncio.Semaphore(self.options.finish_slots)
        self._closed = False
        self.sink: Callable[[Event], object] | None = None
        """Also given every event of every job launched here (a cluster's event bus)."""
        self.dispatcher: Dispatcher | None = None
        """Set on a cluster's API replicas: jobs run on its workers (falkit.distributed)."""

    # ---- starting ----

    def launch(
        self,
        job_id: str,
        kind: str,
        *,
        finish: Finish,
        record: JobRecord | None = None,
        prepare: Prepare | None = None,
        estimate: float | None = None,
        budgets: Iterable[Budget] = (),
        what: str = "this job",
        notes: Iterable[Event] = (),
        logs: bool = True,
    ) -> JobHandle:
        """Run a job in the background; its estimate is reserved in every budget first
        (BudgetExceededError, and nothing happens, when one would be passed). ``logs=False``
        follows it without Fal's log lines (no log or step events; less to carry)."""
        if self._closed:
            raise FalkitError("the job engine is closed")
        running = self._live.get(job_id)
        if running is not None:
            return JobHandle(self, running)
        self._finished.pop(job_id, None)
        if record is None and prepare is None:
            raise ValueError("launch needs a journaled record or a prepare step")
        held = reserve_all(tuple(budgets), job_id, estimate, what)
        live = LiveJob(job_id, kind, record, estimate, held, logs, sink=self.sink)
        if record is not None:
            live.state = record.status if record.request_id is None else "queued"
        for note in notes:
            live.publish(note)
        self._live[job_id] = live
        live.task = asyncio.create_task(self._drive(live, prepare, finish), name=f"job {job_id}")
        return JobHandle(self, live)

    def attach(self, record: JobRecord, finish: Finish) -> JobHandle:
        """Follow (or, if never sent, submit) a journaled job: resume, reattach."""
        return self.launch(record.id, record.kind, finish=finish, record=record)

    def get(self, job_id: str) -> JobHandle | None:
        """A handle on a job this engine runs or ran lately."""
        live = self._live.get(job_id) or self._finished.get(job_id)
        return JobHandle(self, live) if live is not None else None

    def ended(self, record: JobRecord, final: Event, outcome: Any, error: bool) -> JobHandle:
        """A handle on a job that ended before this engine saw it (from the journal)."""
        live = LiveJob(record.id, record.kind, record)
        live.state = record.status
        live.publish(final)
        live.finish(None if error else outcome, outcome if error else None)
        self._finished[record.id] = live
        return JobHandle(self, live)

    def running(self) -> list[JobHandle]:
        return [JobHandle(self, live) for live in self._live.values()]

    def deliver(self, request_id: str, response: FalResponse) -> bool:
        """Finish a followed job from its output delivered by other means (a webhook).

        False when no job here waits for that request (the caller may attach it first).
        """
        job_id = self._by_request.get(request_id)
        live = self._live.get(job_id) if job_id else None
        if live is None and self.dispatcher is not None:
            return self.dispatcher.deliver(request_id, response)
        if live is None or live.delivered.done():
            return False
        data = self.client.scrub(response.data)  # upstream text: the key masked, as results are
        live.delivered.set_result(dataclasses.replace(response, data=data))
        return True

    # ---- the life of a job ----

    async def _drive(self, live: LiveJob, prepare: Prepare | None, finish: Finish) -> None:
        try:
            if live.record is None:
                assert prepare is not None
                live.state = "preparing"
                live.record = await prepare(live.publish)
            if self.dispatcher is not None:  # a cluster's worker runs it; its events mirrored
                await self.dispatcher.run(live)
                return
            request = await self._submitted(live)
            response = await self._followed(live, request)
            revise_all(live, response)
            live.state = "downloading"
            async with self._finishing:
                result = await finish(live.record, response, live.publish)
            settle_all(live, getattr(result, "cost_usd", None))
            live.state = "completed"
            live.publish(CompletedEvent(live.job_id, result))
            live.finish(result)
        except asyncio.CancelledError:
            await self._stopped(live)
            raise
        except FalkitError as exc:
            await self._ended(live, exc)
        except Exception as exc:  # a bug: report it on the handle, never lose the job
            logger.exception("job %s: unexpected error", live.job_id)
            await self._ended(live, FalkitError(f"job {live.job_id}: internal error: {exc!r}"))
        finally:
            self._retire(live)

    async def _submitted(self, live: LiveJob) -> RequestHandle:
        """The job's request at Fal: submitted now (once), or rebuilt from the journal."""
        record = live.record
        assert record is not None
        if record.request_id is not None:
            return self._remember(live, self._handle_for(record))
        if record.status != "pending":
            raise ValidationError.field(
                "job_id", f"job {record.id} is {record.status}; it will not be submitted again"
            )
        async with self._lanes:
            if live.cancel_requested or live.hold_requested:
                raise asyncio.CancelledError
            live.state = "submitting"
            post = asyncio.ensure_future(self._post(live, record))
            return await uninterrupted(post, self.options.submit_grace)

    async def _post(self, live: LiveJob, record: JobRecord) -> RequestHandle:
        """Mark submitting, POST, journal the request id: the one submit of a job."""
        from falkit.client.http import SendProbe  # loaded with the client by now

        live.record = await self.store.mark_submitting(record.id, submitter=submitter_id())
        probe = SendProbe()
        try:
            request = await self.client.submit(
                record.endpoint_id, record.arguments, webhook_url=self._hook(record.id),
                probe=probe,
            )  # fmt: skip
        except SubmitUncertainError as exc:
            message = f"{exc}; {UNCERTAIN_HINT}"
            live.record = await self.store.fail_job(record.id, error=message, status="unknown")
            raise SubmitUncertainError(message, request_id=exc.request_id) from None
        except FalkitError as exc:
            live.record = await self._not_sent(record, exc)
            raise
        except BaseException:
            await asyncio.shield(self._interrupted(live, record, probe.never_sent))
            raise
        live.record = await self.store.set_submitted(
            record.id,
            request_id=request.request_id,
            status_url=request.status_url,
            response_url=request.response_url,
            cancel_url=request.cancel_url,
        )
        self._remember(live, request)
        prewarm()
        live.state = "queued"
        live.position = request.queue_position
        live.publish(QueuedEvent(record.id, request.queue_position or 0, request.request_id))
        return request

    async def _interrupted(self, live: LiveJob, record: JobRecord, never_sent: bool) -> None:
        """A submit interrupted before its answer: back to ``pending`` when no byte of it can
        have left (waiting for a connection, connecting), else ``unknown`` (to reconcile)."""
        with contextlib.suppress(FalkitError):
            if never_sent:
                live.record = await self.store.release_submitting(record.id)
                return
            message = "interrupted while submitting; " + UNCERTAIN_HINT
            live.record = await self.store.fail_job(record.id, error=message, status="unknown")

    async def _not_sent(self, record: JobRecord, exc: FalkitError) -> JobRecord:
        """A submit that certainly did not reach Fal: back to pending when trying again later
        may work (throttled, Fal or the network unreachable, a bad URL), else failed with no
        request id (Fal answered 4xx: the same request would be refused again; `falkit jobs
        retry` sends it anew once fixed)."""
        if isinstance(exc, RateLimitedError | TransportError) or (
            isinstance(exc, ApiError) and (exc.status_code or 0) >= 500
        ):
            return await self.store.release_submitting(record.id)
        return await self.store.fail_job(record.id, error=str(exc), error_type=error_type(exc))

    async def _followed(self, live: LiveJob, request: RequestHandle) -> FalResponse:
        """Follow to the end; the output, or the job's own error raised (journaled)."""
        mapper = EventMapper(live.job_id, last_position=request.queue_position)
        await self._webhook_grace(live)

        async def seen(status: Status) -> None:
            await self._on_status(live, mapper, status)

        follow = self.follower.follow(request, seen, live.delivered, logs=live.logs)
        outcome = await follow.completed()
        if isinstance(outcome, FalResponse):
            return outcome
        if outcome.failed:
            await self._fail(live, outcome.error or "failed", outcome.error_type)
        try:
            return await with_retries(
                lambda: self.client.result(request),
                live.delivered,
                self.options.follow.retry_max,
            )
        except (ValidationError, JobFailedError) as exc:
            await self._fail(live, str(exc), error_type(exc))
            raise  # unreachable: _fail raises

    async def _on_status(self, live: LiveJob, mapper: EventMapper, status: Status) -> None:
        if isinstance(status, Queued):
            live.position = status.position
            live.state = "queued"
        elif ran(status) and not live.started:
            live.started = True
            live.state = "running"
            live.position = None
            record = await self.store.set_status(live.job_id, "running")
            live.record = record or live.record
        for event in mapper.events(status):
            live.publish(event)

    async def _fail(self, live: LiveJob, error: str, error_type: str | None) -> None:
        cancelled = error_type in CANCEL_WORDS or (live.cancel_requested and error_type is None)
        status: JobStatus = "cancelled" if cancelled else "failed"
        live.record = await self.store.fail_job(
            live.job_id, error=error, error_type=error_type, status=status
        )
        request_id = live.request.request_id if live.request else None
        if cancelled:
            raise JobCancelledError(
                f"job {live.job_id} was cancelled", request_id=request_id, error_type=error_type
            )
        raise JobFailedError(
            f"job {live.job_id} failed: {error}", request_id=request_id, error_type=error_type
        )

    # ---- endings ----

    async def _ended(self, live: LiveJob, exc: FalkitError) -> None:
        """Publish how the job ended and settle its budgets."""
        if isinstance(exc, JobCancelledError):
            charged = live.started or live.cancel_outcome == "CANCELLATION_REQUESTED"
            for budget in live.budgets:
                budget.hold(live.job_id) if charged else budget.release(live.job_id)
            live.state = "cancelled"
            live.publish(CancelledEvent(live.job_id, charged))
        else:
            close_budgets(live, exc)
            live.state = live.record.status if live.record is not None else "failed"
            if live.state in ("submitted", "running"):
                live.state = "detached"
            live.publish(FailedEvent(live.job_id, str(exc), error_type(exc)))
        live.finish(error=exc)

    async def _stopped(self, live: LiveJob) -> None:
        """The job's task was cancelled: by the user before submit, or the engine closing."""
        record = live.record
        if live.cancel_requested and (record is None or record.request_id is None):
            if record is not None and record.status == "pending":
                with contextlib.suppress(FalkitError):
                    live.record = await asyncio.shield(
                        self.store.fail_job(
                            record.id, error="cancelled before submit", status="cancelled"
                        )
                    )
            await self._ended(live, JobCancelledError(f"job {live.job_id} was cancelled"))
            return
        if live.hold_requested:
            stop = FalkitError(f"job {live.job_id} was held before it was sent")
        else:
            stop = FalkitError(
                f"stopped following job {live.job_id}: the service was closed; "
                "`falkit jobs resume` finishes it"
            )
        for budget in live.budgets:
            budget.release(live.job_id)
        live.state = "detached"
        live.finish(error=stop)

    def held_unsent(self, live: LiveJob) -> None:
        """End a job held (``stop_unsent``) before its task ever ran: no step of it ran to
        end it, so its handle would wait forever. It stays pending in the journal."""
        if live.done:
            return
        for budget in live.budgets:
            budget.release(live.job_id)
        live.state = "detached"
        live.finish(error=FalkitError(f"job {live.job_id} was held before it was sent"))
        self._retire(live)

    def _retire(self, live: LiveJob) -> None:
        self._live.pop(live.job_id, None)
        self._hooked.pop(live.job_id, None)
        if live.request is not None:
            self._by_request.pop(live.request.request_id, None)
        self._finished[live.job_id] = live
        while len(self._finished) > self.options.keep_finished:
            self._finished.popitem(last=False)

    # ---- cancel and close ----

    async def cancel(self, job_id: str) -> str:
        """Cancel a job: locally if never sent, else at Fal, followed to its real end."""
        live = self._live.get(job_id)
        if live is None:
            done = self._finished.get(job_id)
            if done is not None:
                return f"ALREADY_{done.state.upper()}"
            raise LookupFailedError(f"job {job_id} is not running here")
        if self.dispatcher is not None and live.record is not None:
            return await self.dispatcher.cancel(live)
        live.cancel_requested = True
        while live.request is None and live.state == "submitting" and not live.done:
            await live.changed()  # a POST on the wire: cancel what it queued
        if live.request is None:
            assert live.task is not None
            live.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.shield(live.task)
            if not live.done:  # cancelled before its task ever ran
                await self._stopped(live)
                self._retire(live)
            return "OK"
        live.cancel_outcome = await self.client.cancel(live.request)
        self.follow_now(live.request.request_id)
        return live.cancel_outcome

    async def aclose(self) -> None:
        """Stop following; jobs stay journaled (a POST on the wire finishes first)."""
        self._closed = True
        tasks = [live.task for live in self._live.values() if live.task is not None]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        for live in list(self._live.values()):  # cancelled before their task ever ran
            await self._stopped(live)
            self._retire(live)

    # ---- webhooks ----

    def _hook(self, job_id: str) -> str | None:
        """The webhook URL for this job's submit (and expect its delivery), if any."""
        if self.options.webhook_url:
            self._hooked[job_id] = asyncio.Event()
        return self.options.webhook_url

    async def _webhook_grace(self, live: LiveJob) -> None:
        """Wait for a job's webhook (at most ``webhook_grace`` seconds) before following it."""
        wake = self._hooked.get(live.job_id)
        if wake is None:
            return
        waiting = asyncio.ensure_future(wake.wait())
        waiters: set[asyncio.Future[Any]] = {waiting, live.delivered}
        try:
            await asyncio.wait(
                waiters, timeout=self.options.webhook_grace, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            waiting.cancel()
            self._hooked.pop(live.job_id, None)

    def follow_now(self, request_id: str) -> bool:
        """Stop waiting for a job's webhook and follow it now (a delivery that reports an
        error or no output, a cancel); False if no job here waits for one."""
        wake = self._hooked.get(self._by_request.get(request_id, ""))
        if wake is None:
            return self.dispatcher is not None and self.dispatcher.follow_now(request_id)
        wake.set()
        return True

    # ---- helpers ----

    def _handle_for(self, record: JobRecord) -> RequestHandle:
        """The stored URLs while they are under the configured queue URL, else rebuilt ones
        (so the key is never sent to a host that is no longer configured)."""
        assert record.request_id is not None
        prefix = self.client.settings.queue_url + "/"
        urls = (record.status_url or "", record.response_url or "", record.cancel_url or "")
        if all(url.startswith(prefix) for url in urls):
            return RequestHandle(record.endpoint_id, record.request_id, *urls)
        return self.client.handle(record.endpoint_id, record.request_id)

    def _remember(self, live: LiveJob, request: RequestHandle) -> RequestHandle:
        live.request = request
        self._by_request[request.request_id] = live.job_id
        live._wake()
        return request

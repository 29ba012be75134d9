"""The emulated queue: jobs, the account's concurrency limit, progress logs, cancel, webhooks.

At most ``config.concurrency`` jobs run at once; the rest wait in submit order with a 0-based
position. A running job is one asyncio task that sleeps for the job's duration; its log lines
are planned at start and become visible as time passes, so nothing polls or spins. Waiters
(SSE streams) sleep on an event: a running job's own, set on every change, or, while the job is
queued, one shared event set whenever the queue moves. Every request costs O(1) or O(log n) in
the number of jobs (positions come from a Fenwick tree over submit order), so thousands of jobs
can be in flight. Background work starts lazily on the first request, in whatever event loop
serves the app.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import math
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from falkit.emulator.config import EmulatorConfig, Stats
from falkit.emulator.faults import JOB_ERRORS, Fault, FaultSet
from falkit.emulator.models import (
    Endpoint,
    EndpointNotFound,
    Outcome,
    RunContext,
    execute,
    failure,
    invalid,
    log_plan,
    resolve,
    validate,
)
from falkit.emulator.persist import Journal, Restored, rebase
from falkit.emulator.signing import WebhookSigner, deliver
from falkit.emulator.storage import FileStore

log = logging.getLogger("falkit.emulator")
QUEUED, RUNNING, DONE = "IN_QUEUE", "IN_PROGRESS", "COMPLETED"


@dataclass
class LogLine:
    """A log entry and the loop time from which it is visible."""

    at: float
    entry: dict[str, Any]


@dataclass(eq=False)
class Job:
    """One queued request and everything known about it."""

    id: str
    endpoint: Endpoint
    params: dict[str, Any]
    detail: list[Any] | None
    ctx: RunContext
    webhook: str | None = None
    fault: Fault | None = None
    state: str = QUEUED
    seq: int = 0
    """1-based submit order (the job's slot in the engine's queue-order tree)."""
    started: float | None = None
    finished: float | None = None
    duration: float = 0.0
    wall_start: float = 0.0
    logs: list[LogLine] = field(default_factory=list)
    outcome: Outcome | None = None
    payload: dict[str, Any] | None = None
    """The body as submitted (the platform API's request history shows it)."""
    received_at: float = 0.0
    """Wall-clock time the submit was accepted."""
    ended_at: float | None = None
    """Wall-clock time the job ended."""
    task: asyncio.Task[None] | None = field(default=None, repr=False)
    _changed: asyncio.Event | None = field(default=None, repr=False)

    def touch(self) -> None:
        """Wake everyone waiting for this job to change."""
        if self._changed is not None:
            self._changed.set()
            self._changed = None

    async def changed(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for a change; True if one happened."""
        if timeout <= 0:
            return False
        if self._changed is None:
            self._changed = asyncio.Event()
        return await _set_within(self._changed, timeout)

    def visible_logs(self, now: float) -> list[dict[str, Any]]:
        if self.logs and self.logs[-1].at <= now:
            return [line.entry for line in self.logs]
        return [line.entry for line in self.logs if line.at <= now]

    def next_log_at(self, now: float) -> float | None:
        return next((line.at for line in self.logs if line.at > now), None)  # sorted by time


class QueueOrder:
    """Which submit slots are still queued, as a Fenwick tree: append, remove, count-before.

    A job's queue position is the number of queued jobs submitted before it; counting them
    takes O(log n) however many jobs wait, and removing one from the middle (a cancel, a start
    timeout) is as cheap as taking the head.
    """

    def __init__(self) -> None:
        self._tree = [0]  # 1-based

    def _prefix(self, index: int) -> int:
        total, tree = 0, self._tree
        while index > 0:
            total += tree[index]
            index &= index - 1
        return total

    def append(self) -> int:
        """A new queued slot at the end; its 1-based index."""
        index = len(self._tree)
        low = index & -index
        self._tree.append(1 + self._prefix(index - 1) - self._prefix(index - low))
        return index

    def remove(self, index: int) -> None:
        tree, size = self._tree, len(self._tree)
        while index < size:
            tree[index] -= 1
            index += index & -index

    def before(self, index: int) -> int:
        """How many queued slots precede ``index``."""
        return self._prefix(index - 1)


async def _set_within(event: asyncio.Event, timeout: float) -> bool:
    """Wait up to ``timeout`` seconds for the event; True if it was set."""
    try:
        async with asyncio.timeout(timeout):
            await event.wait()
    except TimeoutError:
        return False
    return True


def _timestamp(wall: float) -> str:
    return dt.datetime.fromtimestamp(wall, dt.UTC).replace(tzinfo=None).isoformat()


class Engine:
    """State and behaviour behind every route; reachable as ``app.state.emulator``."""

    def __init__(self, config: EmulatorConfig | None = None) -> None:
        self.config = config or EmulatorConfig()
        self.stats = Stats()
        self.faults = FaultSet()
        data = self.config.data_dir
        self.store = FileStore(data / "files" if data is not None else None)
        self.journal = Journal(data) if data is not None else None
        """With ``config.data_dir``: every job's submit and end, for the next run."""
        self.signer = WebhookSigner()
        self.public_base: str | None = None
        """Base URL files are served from; None: taken from each request's own origin."""
        self.jobs: dict[str, Job] = {}
        self.closing = False
        self._queue: OrderedDict[str, Job] = OrderedDict()  # O(1) pops from the front
        self._order = QueueOrder()
        self._running: set[str] = set()
        self._queue_moved: asyncio.Event | None = None
        self._background: set[asyncio.Task[Any]] = set()
        for restored in self.journal.load() if self.journal is not None else []:
            self._restore(restored)

    def _restore(self, done: Restored) -> None:
        """A job from a previous run, ended (see :mod:`falkit.emulator.persist`)."""
        try:
            endpoint = resolve(done.endpoint_id)
        except EndpointNotFound:
            return
        job = Job(done.id, endpoint, {}, None, RunContext(self.store, done.cdn_base))
        job.state, job.outcome, job.payload = DONE, done.outcome, done.payload
        job.received_at, job.wall_start = done.received_at, done.started_at
        job.ended_at = done.ended_at
        if done.inference_time is not None:
            job.started, job.finished = 0.0, done.inference_time
        job.logs = [LogLine(-math.inf, entry) for entry in done.logs]
        self.jobs[job.id] = job

    @property
    def queued(self) -> int:
        return len(self._queue)

    @property
    def running(self) -> int:
        return len(self._running)

    @property
    def completed(self) -> int:
        return len(self.jobs) - len(self._queue) - len(self._running)

    def context(self, origin: str) -> RunContext:
        """Where a request's outputs live: files under ``{public base or origin}/cdn``."""
        base = self.public_base or origin
        hosts = {urlsplit(origin).netloc, urlsplit(base).netloc}
        plain = self.config.plain_images
        return RunContext(self.store, f"{base}/cdn", frozenset(hosts), plain_images=plain)

    # ---- queue ----

    def submit(
        self, endpoint: Endpoint, body: dict[str, Any], ctx: RunContext, *,
        webhook: str | None = None, fault: Fault | None = None,
        start_timeout: float | None = None,
    ) -> Job:  # fmt: skip
        """Queue a job (input problems surface later, at its result, as on Fal).

        ``start_timeout`` (X-Fal-Request-Timeout) ends a job still queued after that many
        seconds with Fal's user start-timeout: COMPLETED + request_timeout, result 504.
        """
        params, detail = validate(endpoint, body)
        job = Job(str(uuid.uuid4()), endpoint, params, detail, ctx, webhook, fault)
        job.payload, job.received_at = dict(body), time.time()
        job.seq = self._order.append()
        self.jobs[job.id] = job
        self._queue[job.id] = job
        self.stats.count_submit(endpoint.endpoint_id)
        if self.journal is not None:
            self.journal.write(job)
        self._pump()
        if start_timeout is not None and job.state == QUEUED:
            asyncio.get_running_loop().call_later(start_timeout, self._expire, job)
        return job

    def find(self, app_prefix: str, request_id: str) -> Job | None:
        """The job, if the URL's app part is its owner/alias or a prefix of its full id."""
        job = self.jobs.get(request_id)
        if job is None:
            return None
        endpoint_id = job.endpoint.endpoint_id
        is_prefix = endpoint_id.startswith(app_prefix + "/") and app_prefix.startswith(
            job.endpoint.app
        )
        return job if app_prefix == endpoint_id or is_prefix else None

    def position(self, job: Job) -> int:
        return self._order.before(job.seq) if job.id in self._queue else 0

    async def changed(self, job: Job, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for the job (or, while it is queued, the queue) to
        change; True if something did."""
        if job.state != QUEUED:
            return await job.changed(timeout)
        if timeout <= 0:
            return False
        if self._queue_moved is None:
            self._queue_moved = asyncio.Event()
        return await _set_within(self._queue_moved, timeout)

    def _moved(self) -> None:
        """Wake every waiter on a queued job: positions changed."""
        if self._queue_moved is not None:
            self._queue_moved.set()
            self._queue_moved = None

    def _unqueue(self, job: Job) -> None:
        del self._queue[job.id]
        self._order.remove(job.seq)

    def _pump(self) -> None:
        started = False
        while (
            not self.closing
            and self._queue
            and len(self._running) < max(1, self.config.concurrency)
        ):
            _, job = self._queue.popitem(last=False)
            self._order.remove(job.seq)
            self._start(job)
            started = True
        if started:
            self._moved()

    def _duration(self, endpoint: Endpoint) -> float:
        return self.config.training_seconds if endpoint.is_training else self.config.latency

    def _start(self, job: Job) -> None:
        loop = asyncio.get_running_loop()
        job.state, job.started, job.wall_start = RUNNING, loop.time(), time.time()
        job.duration = self._duration(job.endpoint)
        plan = log_plan(job.endpoint, job.params, job.duration) if job.detail is None else []
        job.logs = [self._line(job, job.started + offset, text) for offset, text in plan]
        self._running.add(job.id)
        job.task = loop.create_task(self._run(job))
        job.touch()

    def _line(self, job: Job, at: float, message: str, level: str = "INFO") -> LogLine:
        wall = job.wall_start + (at - (job.started or at))
        entry = {
            "message": message,
            "level": level,
            "source": "USER",
            "timestamp": _timestamp(wall),
        }
        return LogLine(at, entry)

    async def _run(self, job: Job) -> None:
        loop = asyncio.get_running_loop()
        try:
            outcome = await self._outcome(job, job.duration)
            if outcome.ok:
                await asyncio.sleep(max(0.0, (job.started or 0.0) + job.duration - loop.time()))
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("emulated job %s crashed", job.id)
            outcome = failure(500, "Internal server error", "internal_server_error")
        self._finish(job, outcome)

    async def _outcome(self, job: Job, duration: float) -> Outcome:
        if job.detail is not None:
            return invalid(job.detail)
        if job.fault is not None and job.fault.kind == "job_error":
            await asyncio.sleep(duration / 2)
            return _job_error(job.fault)
        return await execute(job.ctx, job.endpoint, job.params, duration)

    def _finish(self, job: Job, outcome: Outcome) -> None:
        if job.state == DONE:
            return
        now = asyncio.get_running_loop().time()
        job.state, job.finished, job.outcome = DONE, now, outcome
        job.ended_at = time.time()
        if job.started is not None:
            job.logs = [line for line in job.logs if line.at <= now]
            text = f"Finished in {now - job.started:.2f}s" if outcome.ok else str(outcome.error)
            job.logs.append(self._line(job, now, text, "INFO" if outcome.ok else "ERROR"))
        if self.journal is not None:
            self.journal.write(job)
        self._running.discard(job.id)
        job.touch()
        if job.webhook:
            self._spawn(self._deliver(job))
        self._pump()

    def _dequeue(self, job: Job, outcome: Outcome) -> None:
        self._unqueue(job)
        self._moved()
        self._finish(job, outcome)

    def _expire(self, job: Job) -> None:
        if job.state == QUEUED:
            outcome = failure(504, "Request timed out", "request_timeout")
            outcome.extra_headers["x-fal-request-timeout-type"] = "user"
            self._dequeue(job, outcome)

    def cancel(self, job: Job) -> tuple[int, dict[str, str]]:
        """Fal's cancel: queued jobs are removed, running ones stopped, finished ones refused."""
        if job.state == DONE:
            return 400, {"status": "ALREADY_COMPLETED"}
        outcome = failure(400, "Request was cancelled", "cancelled")
        if job.state == QUEUED:
            self._dequeue(job, outcome)
            return 200, {"status": "OK"}
        task = job.task
        self._finish(job, outcome)
        if task is not None:
            task.cancel()
        return 202, {"status": "CANCELLATION_REQUESTED"}

    # ---- sync runs ----

    async def run_now(
        self, endpoint: Endpoint, body: dict[str, Any], ctx: RunContext, fault: Fault | None
    ) -> tuple[str, Outcome]:
        """A fal.run call: no queue, the output after the model's duration."""
        request_id = str(uuid.uuid4())
        params, detail = validate(endpoint, body)
        job = Job(request_id, endpoint, params, detail, ctx, fault=fault)
        loop = asyncio.get_running_loop()
        started, duration = loop.time(), self._duration(endpoint)
        outcome = await self._outcome(job, duration)
        if outcome.ok:
            await asyncio.sleep(max(0.0, started + duration - loop.time()))
        return request_id, outcome

    # ---- what clients see ----

    def status_body(self, job: Job, base: str, with_logs: bool) -> dict[str, Any]:
        """The status JSON exactly as Fal shapes it (three statuses only)."""
        root = f"{base}/{job.endpoint.app}/requests/{job.id}"
        body: dict[str, Any] = {
            "status": job.state,
            "request_id": job.id,
            "response_url": root,
            "status_url": f"{root}/status",
            "cancel_url": f"{root}/cancel",
        }
        if job.state == QUEUED:
            body["queue_position"] = self.position(job)
            return body
        body["logs"] = self._logs(job) if with_logs else None
        if job.state == DONE and job.outcome is not None:
            took = None
            if job.started is not None and job.finished is not None:
                took = round(job.finished - job.started, 4)
            body["metrics"] = {"inference_time": took}
            if job.outcome.error is not None:
                body["error"], body["error_type"] = job.outcome.error, job.outcome.error_type
        return body

    def result_body(self, job: Job, origin: str) -> Any:
        """A finished job's result body, its file URLs on the listener at ``origin``."""
        assert job.outcome is not None
        cdn_base = f"{self.public_base or origin}/cdn"
        return rebase(job.outcome.body, job.ctx.cdn_base, cdn_base)

    def _logs(self, job: Job) -> list[dict[str, Any]]:
        lines = job.visible_logs(asyncio.get_running_loop().time())
        window = self.config.log_window
        return lines[-window:] if window else lines

    # ---- background work ----

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _deliver(self, job: Job) -> None:
        assert job.webhook is not None
        assert job.outcome is not None
        await deliver(
            job.webhook,
            webhook_payload(job.id, job.outcome),
            signer=self.signer,
            user_id=self.config.user_id,
            delays=tuple(self.config.webhook_retry_delays),
            stats=self.stats,
        )

    async def aclose(self) -> None:
        """Stop every job and delivery (call in the loop that serves the app)."""
        self.closing = True
        tasks = [j.task for j in self.jobs.values() if j.task is not None and not j.task.done()]
        tasks += list(self._background)
        for task in tasks:
            task.cancel()
        for job in self.jobs.values():
            job.touch()
        self._moved()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self.journal is not None:
            self.journal.close()
        self.store.close()


def _job_error(fault: Fault) -> Outcome:
    code, text = JOB_ERRORS.get(fault.error_type, (500, "Internal server error"))
    return failure(code, text, fault.error_type)


def webhook_payload(request_id: str, outcome: Outcome) -> dict[str, Any]:
    """The body Fal POSTs to a webhook when a request ends."""
    base = {"request_id": request_id, "gateway_request_id": request_id}
    if outcome.ok:
        return {**base, "status": "OK", "payload": outcome.body}
    error = f"Invalid status code: {outcome.status_code}"
    return {**base, "status": "ERROR", "error": error, "payload": outcome.body}

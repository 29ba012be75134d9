"""Batches this server runs: each in a task of its own, its progress kept as an event log.

A batch started through the API runs ``FalService.generate_batch`` in the background; its
BatchProgressEvent snapshots (and a final completed or failed event with the BatchResult) are
published on a small event log of the same kind as a job's, so the SSE code streams both. The
batch itself is journaled by the service: a server restarted mid-batch shows it from the
library, and `falkit batch resume ID` (or the same POST again) carries it on.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from falkit.errors import FalkitError, ValidationError
from falkit.events import BatchProgressEvent, CompletedEvent, FailedEvent
from falkit.request import parse_loras
from falkit.service.handle import JobHandle, LiveJob

if TYPE_CHECKING:
    from falkit.service import FalService
    from falkit.service.batch import BatchResult

URL_PREFIXES = ("https://", "http://", "data:")


@dataclass
class BatchRun:
    batch_id: str
    live: LiveJob
    task: asyncio.Task[None] | None = None

    @property
    def progress(self) -> BatchProgressEvent | None:
        for event in reversed(self.live.events):
            if isinstance(event, BatchProgressEvent):
                return event
        return None

    @property
    def result(self) -> BatchResult | None:
        outcome = self.live.outcome
        if outcome.done() and not outcome.cancelled() and outcome.exception() is None:
            value: BatchResult | None = outcome.result()
            return value
        return None


class BatchRuns:
    """The batches running (or run lately) in this server, by id."""

    def __init__(self, service: FalService) -> None:
        self.service = service
        self._runs: dict[str, BatchRun] = {}

    def get(self, batch_id: str) -> BatchRun | None:
        return self._runs.get(batch_id)

    async def handle(self, batch_id: str) -> JobHandle | None:
        run = self._runs.get(batch_id)
        if run is None:
            return None
        return JobHandle(await self.service.engine(), run.live)

    async def start(self, requests: list[Any], options: dict[str, Any]) -> BatchRun:
        """Check the batch (422 / 402 before anything is written), then run it; returns once
        it is journaled and running (or has ended at once)."""
        service = self.service
        await check_loras(service, requests, options.get("defaults"))
        dry = await service.generate_batch(requests, dry_run=True, **options)
        service.client()  # no key: 503 before anything is written
        if service.budget.limit is not None:
            service.budget.check(dry.estimated_cost, f"this batch of {dry.total} jobs")
        running = self._runs.get(dry.batch_id)
        if running is not None and not running.live.done:
            return running
        run = BatchRun(dry.batch_id, LiveJob(dry.batch_id, "batch"))
        started: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def progress(event: BatchProgressEvent) -> None:
            run.live.publish(event)
            if not started.done():
                started.set_result(None)

        run.task = asyncio.create_task(self._run(run, requests, options, progress))
        run.task.add_done_callback(lambda task: task.cancelled() or task.exception())
        self._runs[run.batch_id] = run
        await asyncio.wait({started, run.task}, return_when=asyncio.FIRST_COMPLETED)
        if run.task.done() and not started.done():
            self._runs.pop(run.batch_id, None)
            run.task.result()  # raises what refused the batch (budget, input)
        return run

    async def _run(
        self, run: BatchRun, requests: list[Any], options: dict[str, Any], progress: Any
    ) -> None:
        try:
            result = await self.service.generate_batch(requests, on_progress=progress, **options)
        except FalkitError as exc:
            run.live.publish(FailedEvent(run.batch_id, str(exc)))
            run.live.finish(error=exc)
            raise
        run.live.publish(CompletedEvent(run.batch_id, result))
        run.live.finish(result)

    async def aclose(self) -> None:
        """Stop running batches (their jobs stay journaled: the same POST resumes them)."""
        tasks = [run.task for run in self._runs.values() if run.task and not run.task.done()]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(BaseException):
                await task


async def check_loras(service: FalService, requests: list[Any], defaults: Any) -> None:
    """A batch's LoRAs must be library names or URLs (no file on the server's disk)."""
    items = [*requests, defaults or {}]
    store = None
    for number, item in enumerate(items, 1):
        if not isinstance(item, dict):
            continue
        refs = parse_loras(item.get("loras", item.get("lora")))
        for index, ref in enumerate(refs):
            if ref.path.startswith(URL_PREFIXES):
                continue
            store = store or await service.store()
            if await store.get_lora(ref.path) is None:
                where = "defaults" if number == len(items) else f"prompts.{number - 1}"
                raise ValidationError.field(
                    f"{where}.loras.{index}.path",
                    f"{ref.path!r} is not a LoRA in the library",
                    "a library name (GET /api/v1/loras) or an https URL",
                )

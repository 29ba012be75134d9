"""What the MCP tools do, over one FalService: start jobs on its engine, wait, describe them.

Tools answer within the wait limit; jobs that run longer go on in the service's job engine and
a later get_job waits on the same job. Every check a user can fail (parameters, allowed
folders, the spend cap, the API key) runs before anything is uploaded or submitted, and raises
the same falkit errors the CLI shows. This module holds only MCP wording and waiting; job
tracking, budgets and events are the service's.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from falkit.catalog import MODELS
from falkit.events import Event, LogEvent, StepEvent
from falkit.mcp import content
from falkit.mcp.safety import AllowedDirs
from falkit.request import ImageRequest, LoraRef
from falkit.views import lora_json

if TYPE_CHECKING:
    from mcp.types import CallToolResult

    from falkit.request import PreparedJob
    from falkit.service import FalService
    from falkit.service.handle import JobHandle
    from falkit.service.loras import LoraPlan

URLS = ("https://", "http://")
EventSink = Callable[[Event], Awaitable[None]]


@dataclass(frozen=True)
class ServerOptions:
    """What the user chose when starting the server."""

    allow_dirs: tuple[Path, ...] = ()
    """Folders whose files tools may read, besides FALKIT_HOME."""
    max_spend_usd: float | None = None
    """Refuse jobs whose estimate would take this server's spend past this many USD."""
    wait_seconds: float = 50.0
    """How long a tool waits for a job before answering with its id (chat hosts allow ~60 s)."""


class McpApp:
    """The server's state: the service (with its engine and spend cap) and the folders."""

    def __init__(self, service: FalService, options: ServerOptions | None = None) -> None:
        from falkit.service.budget import check_limit

        self.service = service
        self.options = options or ServerOptions()
        check_limit(self.options.max_spend_usd, "max_spend_usd")
        if self.options.max_spend_usd is not None:
            service.budget.limit = self.options.max_spend_usd
            service.budget.hint = "the user can restart `falkit mcp` with a higher --max-spend-usd"
        self.dirs = AllowedDirs([*self.options.allow_dirs, service.settings.home])

    async def __aenter__(self) -> McpApp:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Nothing of its own: jobs stay in the service's engine and journal."""

    def instructions(self) -> str:
        from falkit.mcp.instructions import server_instructions

        return server_instructions(
            wait_seconds=self.options.wait_seconds,
            allowed=self.dirs.describe(),
            max_spend_usd=self.options.max_spend_usd,
        )

    # ---- images ----

    async def generate(self, request: ImageRequest, report: EventSink) -> CallToolResult:
        """Check, start on the engine, wait; answer with the images or the running job's id."""
        prepared, plan = await self.plan(request)
        handle = await self.service.start_prepared(prepared, plan=plan)
        await wait(handle, self.options.wait_seconds, report)
        return await self._describe(handle, first=True)

    async def plan(self, request: ImageRequest) -> tuple[PreparedJob, LoraPlan]:
        """Every offline check of a generation, the same for generate and estimate: local LoRA
        files under the allowed folders, LoRA names in the library, the catalog's limits."""
        return await self.service.plan_image(await self._checked_files(request))

    async def _checked_files(self, request: ImageRequest) -> ImageRequest:
        """LoRAs given as local files must lie under the allowed folders."""
        refs = [await self._check_lora(index, ref) for index, ref in enumerate(request.loras)]
        return request.model_copy(update={"loras": tuple(refs)})

    async def _check_lora(self, index: int, ref: LoraRef) -> LoraRef:
        path = ref.path
        if path.startswith((*URLS, "data:")):
            return ref
        store = await self.service.store()
        if await store.get_lora(path) is not None:
            return ref
        if not Path(os.path.expanduser(path)).exists():
            return ref  # planning says it is unknown and lists the library
        checked = self.dirs.check(path, field=f"loras.{index}")
        return ref.model_copy(update={"path": str(checked)})

    async def estimate(self, request: ImageRequest) -> CallToolResult:
        """What a generation would send and cost; nothing is sent."""
        prepared, _ = await self.plan(request)
        cost = prepared.estimated_cost
        text = f"{prepared.model} ({prepared.endpoint_id}): estimated cost "
        text += "unknown (not a catalog model)" if cost is None else f"${cost:.4f}"
        budget = self.service.budget
        data: dict[str, Any] = {**prepared.to_json(), "cap_usd": budget.limit}
        if budget.limit is not None:
            data["spent_usd"] = budget.committed
            data["fits_cap"] = budget.fits(cost)
            text += f"; this server has spent or committed ${budget.committed:.4f} of "
            text += f"${budget.limit:g}"
            text += "" if data["fits_cap"] else ", so the cap would refuse this job"
        return content.answer(text + ". Nothing was sent.", data)

    def models(self) -> CallToolResult:
        rows = [
            {
                "name": spec.name,
                "endpoint_id": spec.endpoint_id,
                "use": spec.use,
                "kind": spec.kind,
                "price": spec.price.describe(),
                "takes_loras": spec.takes_loras,
                "defaults": spec.defaults(),
            }
            for spec in MODELS.values()
        ]
        lines = [f"{r['name']}: {r['use']}; {r['price']} ({r['kind']})" for r in rows]
        return content.answer("\n".join(lines), {"models": rows})

    # ---- LoRAs ----

    async def train(
        self, source: str, options: dict[str, Any], report: EventSink
    ) -> CallToolResult:
        """Check the source's folder and the cap, then train in the background; answer once
        the job is submitted (or with the first error, if the input is refused)."""
        source = source.strip()
        if not source.startswith(URLS):
            source = str(self.dirs.check(source, field="source"))
        handle = await self.service.start_training(source, **options)
        await wait(handle, self.options.wait_seconds, report, until=_submitted)
        if handle.done:
            return await self._describe(handle, first=True)
        if not _submitted(handle):
            return content.preparing_answer(handle.job_id)
        return self._training_started(handle)

    def _training_started(self, handle: JobHandle) -> CallToolResult:
        from falkit.service.training import read_pending

        pending = read_pending(self.service.settings.home, handle.job_id) or {}
        name = pending.get("name")
        text = (
            f"Training job {handle.job_id} is submitted; the LoRA will be registered as "
            f"{name!r}. Training takes a few minutes. Call get_job with job_id "
            f'"{handle.job_id}" to wait for it.'
        )
        notes = notes_of(handle)
        data = {
            "job_id": handle.job_id,
            "kind": "training",
            "status": "submitted",
            "name": name,
            "done": False,
        }
        return content.answer("\n".join([text, *notes]), {**data, "notes": notes})

    async def loras(self) -> CallToolResult:
        records = await self.service.list_loras()
        lines = [
            f"{r.name}: trigger word {r.trigger_word!r}, file {r.local_path}" for r in records
        ] or ["No LoRAs yet; train_lora trains one from the user's pictures."]
        return content.answer("\n".join(lines), {"loras": [lora_json(r) for r in records]})

    # ---- jobs ----

    async def get_job(self, ref: str, wait_for: float, report: EventSink) -> CallToolResult:
        """A job's state, waiting up to ``wait_for`` seconds for it; the result once done.

        A job nobody follows any more (a restarted server, a crashed CLI) is reattached by its
        request id, never submitted again.
        """
        handle = await self.service.handle(ref)
        if not handle.done:
            await wait(handle, wait_for, report, late=True)
        return await self._describe(handle)

    async def _describe(self, handle: JobHandle, *, first: bool = False) -> CallToolResult:
        """The job's answer: its result, how it ended, or that it still runs. On the call that
        started the job (``first``), an error is raised as a tool error."""
        from falkit.errors import FalkitError
        from falkit.service.results import GenerationResult
        from falkit.service.training import TrainingResult

        if not handle.done:
            return content.running_answer(
                handle.job_id, handle.kind, handle.state, progress(handle)
            )
        try:
            result = await handle.result()
        except FalkitError:
            if first or handle.record is None:
                raise
            job = await self.service.get_job(handle.job_id)
            if job.status in ("submitted", "running"):
                raise  # we stopped following it: say why
            return content.ended_answer(job)
        if isinstance(result, GenerationResult):
            return await content.generation_answer(result, notes_of(handle))
        if isinstance(result, TrainingResult):
            return content.training_answer(result)
        return await self._completed_training(handle.job_id)

    async def _completed_training(self, job_id: str) -> CallToolResult:
        from falkit.service.training import result_from

        job = await self.service.get_job(job_id)
        lora = next((r for r in await self.service.list_loras() if r.job_id == job.id), None)
        if lora is None:
            return content.answer(
                f"Training job {job.id} completed, but no LoRA in the library comes from it "
                "(it may have been removed).",
                {**content.job_view(job), "done": True},
            )
        return content.training_answer(result_from(lora, job, job.cost_usd))

    async def list_jobs(self, search: str | None, limit: int, status: str | None) -> CallToolResult:
        jobs = await self.service.list_jobs(search=search, limit=limit, status=status)
        lines = [content.job_line(j) for j in jobs] or ["No jobs match."]
        return content.answer("\n".join(lines), {"jobs": [content.job_view(j) for j in jobs]})

    async def cancel(self, ref: str) -> CallToolResult:
        job = await self.service.get_job(ref)
        outcome = await self.service.cancel_job(job.id)
        text = {
            "OK": f"Job {job.id} is cancelled.",
            "CANCELLATION_REQUESTED": f"Cancellation of job {job.id} is requested; "
            "a job already running may still finish (and be charged).",
        }.get(outcome, f"Job {job.id} could not be cancelled: {outcome}.")
        return content.answer(text, {"job_id": job.id, "outcome": outcome})


def _submitted(handle: JobHandle) -> bool:
    return handle.record is not None and handle.record.request_id is not None


async def wait(
    handle: JobHandle,
    timeout: float,
    report: EventSink,
    *,
    until: Callable[[JobHandle], bool] | None = None,
    late: bool = False,
) -> bool:
    """Pass the job's events on for up to ``timeout`` seconds, until it ends (or ``until``
    holds); True if it ended. Leaving early never stops the job. A ``late`` caller starts
    from where the job stands now, not from its first event."""
    last = handle.last_event
    after = last.seq - 1 if late and last is not None else 0

    async def relay() -> None:
        async for event in handle.events(after=after):
            await report(event)
            if until is not None and until(handle):
                return

    if until is not None and until(handle):
        return handle.done
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(relay(), max(0.0, timeout))
    return handle.done


def notes_of(handle: JobHandle) -> list[str]:
    """What falkit did on the user's behalf for this job (e.g. a trigger word added)."""
    from falkit.events import NoteEvent

    return [e.message for e in handle.history() if isinstance(e, NoteEvent)]


def progress(handle: JobHandle) -> str | None:
    from falkit.mcp.progress import describe

    last = handle.last_event
    if last is None:
        return None
    if isinstance(last, StepEvent):
        return f"step {last.step}/{last.total}"
    if isinstance(last, LogEvent):
        return last.message
    return describe(last)[1]

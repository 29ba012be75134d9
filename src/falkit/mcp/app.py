"""What the MCP tools do, over one FalService: start jobs, follow them, describe them.

Tools answer within the wait limit; jobs that run longer go on in the background (see jobs.py).
Every check a user can fail (parameters, allowed folders, spending cap, API key) runs before
anything is uploaded or submitted, and raises the same falkit errors the CLI shows.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from falkit.catalog import MODELS
from falkit.mcp import content
from falkit.mcp.jobs import EventSink, JobTracker, TrackedJob, Work
from falkit.mcp.safety import AllowedDirs, SpendCap
from falkit.types import LogEvent, ProgressEvent, StepEvent
from falkit.views import job_json, lora_json

if TYPE_CHECKING:
    from mcp.types import CallToolResult

    from falkit.service import FalService
    from falkit.service.progress import ProgressCallback
    from falkit.service.results import PreparedJob
    from falkit.store import JobRecord

URLS = ("https://", "http://")


@dataclass(frozen=True)
class ServerOptions:
    """What the user chose when starting the server."""

    allow_dirs: tuple[Path, ...] = ()
    """Folders whose files tools may read, besides FALKIT_HOME."""
    max_spend_usd: float | None = None
    """Refuse jobs whose estimate would take this server's spend past this many USD."""
    wait_seconds: float = 50.0
    """How long a tool waits for a job before answering with its id (chat hosts allow ~60 s)."""


@dataclass(frozen=True)
class ImageRequest:
    """generate_image's and estimate_cost's parameters."""

    prompt: str
    model: str | None = None
    image_size: str | None = None
    steps: int | None = None
    guidance: float | None = None
    seed: int | None = None
    num_images: int = 1
    output_format: str | None = None
    loras: Sequence[str | dict[str, Any]] = field(default_factory=tuple)

    def lora_list(self) -> list[dict[str, Any]] | None:
        """LoRAs as {"path", "scale"}; a string is NAME_OR_URL[:SCALE]."""
        return [_lora_item(item) for item in self.loras] or None

    def params(self, loras: list[dict[str, Any]] | None) -> dict[str, Any]:
        return {
            "model": self.model or ("flux-lora" if loras else "flux-schnell"),
            "image_size": self.image_size,
            "num_inference_steps": self.steps,
            "guidance_scale": self.guidance,
            "seed": self.seed,
            "num_images": self.num_images,
            "output_format": self.output_format,
            "loras": loras,
        }


def _lora_item(item: str | dict[str, Any]) -> dict[str, Any]:
    if isinstance(item, dict):
        return dict(item)
    head, sep, tail = item.rpartition(":")
    try:
        return {"path": head, "scale": float(tail)} if sep and head else {"path": item}
    except ValueError:
        return {"path": item}  # a URL's own colon


class McpApp:
    """The server's state: the service, its background jobs, the folders and the spending cap."""

    def __init__(self, service: FalService, options: ServerOptions | None = None) -> None:
        self.service = service
        self.options = options or ServerOptions()
        self.dirs = AllowedDirs([*self.options.allow_dirs, service.settings.home])
        self.cap = SpendCap(self.options.max_spend_usd)
        self.jobs = JobTracker()

    async def __aenter__(self) -> McpApp:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Stop following jobs; unfinished ones stay in the journal for `falkit jobs resume`."""
        await self.jobs.aclose()

    def instructions(self) -> str:
        from falkit.mcp.instructions import server_instructions

        return server_instructions(
            wait_seconds=self.options.wait_seconds,
            allowed=self.dirs.describe(),
            max_spend_usd=self.options.max_spend_usd,
        )

    # ---- images ----

    async def generate(self, request: ImageRequest, report: EventSink) -> CallToolResult:
        """Check, reserve the cost, journal, start; answer with images or the running job's id."""
        notes: list[str] = []
        prepared = await self._prepare(request, notes)
        self.service.client()  # no key: say how to set it, before anything is journaled
        store = await self.service.store()
        token = await self.cap.reserve(store, prepared.estimated_cost, f"this {prepared.model} job")
        try:
            job = await self.service.create_job(prepared)
        except BaseException:
            self.cap.release(token)
            raise
        self.cap.bind(token, job.id)
        entry = self.jobs.start("image", _runner(self.service, job), job_id=job.id)
        entry.notes.extend(notes)
        await self.jobs.wait(entry, self.options.wait_seconds, report)
        if entry.error is not None:
            raise entry.error
        return await self._describe(job.id, entry)

    async def _prepare(self, request: ImageRequest, notes: list[str]) -> PreparedJob:
        """Validate everything offline first, then resolve LoRAs (which may reach the network)."""
        loras = request.lora_list()
        params = request.params(loras)
        prepared = self.service.prepare_image(request.prompt, **params)
        if not loras:
            return prepared
        loras = [await self._check_lora(index, item) for index, item in enumerate(loras)]

        def collect(event: ProgressEvent) -> None:
            if isinstance(event, LogEvent):
                notes.append(event.message)

        prompt, resolved = await self.service.resolve_loras(request.prompt, loras, collect)
        return self.service.prepare_image(prompt, **{**params, "loras": resolved})

    async def _check_lora(self, index: int, item: dict[str, Any]) -> dict[str, Any]:
        """A LoRA given as a local file must be under the allowed folders."""
        path = str(item.get("path", "")).strip()
        if path.startswith((*URLS, "data:")):
            return item
        store = await self.service.store()
        if await store.get_lora(path) is not None:
            return item
        if not Path(os.path.expanduser(path)).exists():
            return item  # resolve_loras says it is unknown and lists the library
        return {**item, "path": str(self.dirs.check(path, field=f"loras.{index}"))}

    async def estimate(self, request: ImageRequest) -> CallToolResult:
        """What a generation would send and cost; nothing is sent."""
        loras = request.lora_list()
        prepared = self.service.prepare_image(request.prompt, **request.params(loras))
        cost = prepared.estimated_cost
        text = f"{prepared.model} ({prepared.endpoint_id}): estimated cost "
        text += "unknown (not a catalog model)" if cost is None else f"${cost:.4f}"
        data: dict[str, Any] = {**prepared.to_json(), "cap_usd": self.cap.limit}
        if self.cap.limit is not None:
            spent = await self.cap.spent(await self.service.store())
            data["spent_usd"] = spent
            text += f"; this server has spent or committed ${spent:.4f} of ${self.cap.limit:g}"
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
        """Check the source's folder and the cap, then train in the background; answer with the
        job id as soon as the job is submitted (or the first error, if the input is refused)."""
        source = source.strip()
        if not source.startswith(URLS):
            source = str(self.dirs.check(source, field="source"))
        self.service.client()
        store = await self.service.store()
        spec = MODELS["flux-lora-training"]
        token = await self.cap.reserve(store, spec.estimate_cost({}), "this LoRA training")
        entry = self.jobs.start("training", self._trainer(source, options, token))
        await self.jobs.wait(entry, self.options.wait_seconds, report, until_submitted=True)
        if entry.error is not None:
            raise entry.error
        if entry.job_id is None:
            return content.preparing_answer(entry.key)
        if entry.done:
            return await self._describe(entry.job_id, entry)
        return self._training_started(entry)

    def _trainer(self, source: str, options: dict[str, Any], token: int) -> Work:
        async def work(on_progress: ProgressCallback) -> Any:
            def relay(event: ProgressEvent) -> Awaitable[None] | None:
                if event.job_id:
                    self.cap.bind(token, event.job_id)
                return on_progress(event)

            try:
                return await self.service.train_lora(source, on_progress=relay, **options)
            finally:
                self.cap.release(token)

        return work

    def _training_started(self, entry: TrackedJob) -> CallToolResult:
        from falkit.service.training import read_pending

        assert entry.job_id is not None
        pending = read_pending(self.service.settings.home, entry.job_id) or {}
        name = pending.get("name")
        text = (
            f"Training job {entry.job_id} is submitted; the LoRA will be registered as "
            f"{name!r}. Training takes a few minutes. Call get_job with job_id "
            f'"{entry.job_id}" to wait for it.'
        )
        data = {"job_id": entry.job_id, "kind": "training", "name": name, "done": False}
        return content.answer("\n".join([text, *entry.notes]), {**data, "notes": entry.notes})

    async def loras(self) -> CallToolResult:
        records = await self.service.list_loras()
        lines = [
            f"{r.name}: trigger word {r.trigger_word!r}, file {r.local_path}" for r in records
        ] or ["No LoRAs yet; train_lora trains one from the user's pictures."]
        return content.answer("\n".join(lines), {"loras": [lora_json(r) for r in records]})

    # ---- jobs ----

    async def get_job(self, ref: str, wait: float, report: EventSink) -> CallToolResult:
        """A job's state, waiting up to ``wait`` seconds for it; the result once done."""
        entry = self.jobs.find(ref)
        if entry is not None and entry.job_id is None:  # a training still being uploaded
            await self.jobs.wait(entry, wait, report)
            if entry.error is not None:
                raise entry.error
            if entry.job_id is None:
                return content.preparing_answer(entry.key)
        job = await self.service.get_job(entry.job_id if entry and entry.job_id else ref)
        if entry is None or (entry.done and not job.finished):
            entry = self._reattach(job)
        if entry is not None and not entry.done:
            await self.jobs.wait(entry, wait, report)
        return await self._describe(job.id, entry)

    def _reattach(self, job: JobRecord) -> TrackedJob | None:
        """Follow a submitted job nobody here follows (a restarted server, a crashed CLI).

        It is never submitted again: only jobs Fal gave a request id are picked up.
        """
        if job.finished or job.request_id is None:
            return None
        return self.jobs.start(job.kind, _runner(self.service, job), job_id=job.id)

    async def _describe(self, job_id: str, entry: TrackedJob | None) -> CallToolResult:
        from falkit.service.results import GenerationResult
        from falkit.service.training import TrainingResult

        notes = entry.notes if entry else []
        result = entry.result if entry else None
        if isinstance(result, GenerationResult):
            return await content.generation_answer(result, notes)
        if isinstance(result, TrainingResult):
            return content.training_answer(result)
        job = await self.service.get_job(job_id)
        if job.status == "completed":
            return await self._completed(job)
        if job.finished:
            return content.ended_answer(job)
        if entry is not None and entry.error is not None:
            return content.answer(
                f"Job {job.id} stopped: {entry.error}. Its request is kept; get_job again or "
                "`falkit jobs resume` picks it up.",
                {**job_json(job), "done": False},
            )
        if entry is None:
            return content.answer(
                f"Job {job.id} is {job.status} and was never submitted to Fal; "
                "`falkit jobs resume` in a terminal finishes it.",
                {**job_json(job), "done": False},
            )
        return content.running_answer(job.id, job.kind, job.status, _progress(entry))

    async def _completed(self, job: JobRecord) -> CallToolResult:
        from falkit.service.results import GenerationResult
        from falkit.service.training import result_from

        if job.kind == "image":
            return await content.generation_answer(GenerationResult.from_record(job))
        lora = next((r for r in await self.service.list_loras() if r.job_id == job.id), None)
        if lora is None:
            return content.answer(
                f"Training job {job.id} completed, but no LoRA in the library comes from it "
                "(it may have been removed).",
                {**job_json(job), "done": True},
            )
        return content.training_answer(result_from(lora, job, job.cost_usd))

    async def list_jobs(self, search: str | None, limit: int, status: str | None) -> CallToolResult:
        jobs = await self.service.list_jobs(search=search, limit=limit, status=status)
        lines = [content.job_line(j) for j in jobs] or ["No jobs match."]
        return content.answer("\n".join(lines), {"jobs": [job_json(j) for j in jobs]})

    async def cancel(self, ref: str) -> CallToolResult:
        entry = self.jobs.find(ref)
        if entry is not None and entry.job_id is None and entry.task is not None:
            entry.task.cancel()  # still checking or uploading: nothing was submitted
            return content.answer(
                f"Cancelled {entry.key} before it was submitted.",
                {"job_id": entry.key, "outcome": "CANCELLED_BEFORE_SUBMIT"},
            )
        job = await self.service.get_job(entry.job_id if entry and entry.job_id else ref)
        outcome = await self.service.cancel_job(job.id)
        text = {
            "OK": f"Job {job.id} is cancelled.",
            "CANCELLATION_REQUESTED": f"Cancellation of job {job.id} is requested; "
            "a job already running may still finish (and be charged).",
        }.get(outcome, f"Job {job.id} could not be cancelled: {outcome}.")
        return content.answer(text, {"job_id": job.id, "outcome": outcome})


def _runner(service: FalService, job: JobRecord) -> Work:
    async def work(on_progress: ProgressCallback) -> Any:
        return await service.run_job(job, on_progress)

    return work


def _progress(entry: TrackedJob) -> str | None:
    from falkit.mcp.progress import describe

    if entry.last is None:
        return None
    if isinstance(entry.last, StepEvent):
        return f"step {entry.last.step}/{entry.last.total}"
    return describe(entry.last)[1]

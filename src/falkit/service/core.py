"""FalService: the one service layer under the CLI, the MCP server and the library API."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from falkit.catalog import DEFAULT_MODEL
from falkit.config import Settings, load_settings
from falkit.errors import (
    FalkitError,
    FalTimeoutError,
    NotFoundError,
    ServiceDisabledError,
    ValidationError,
)
from falkit.service.generate import finish_image_job, prepare_image
from falkit.service.progress import ProgressCallback, emit
from falkit.service.results import GenerationResult, PreparedJob
from falkit.types import LogEvent, ProgressEvent

if TYPE_CHECKING:
    import httpx

    from falkit.client import FalClient
    from falkit.service.runner import JobRunner
    from falkit.service.training import TrainingResult
    from falkit.store import JobRecord, JobStore, LoraRecord

Finisher = Callable[["FalService", "JobRecord", Any, ProgressCallback | None], Awaitable[Any]]


RESUME_CONCURRENCY = 8


class FalService:
    """Generate images (and train LoRAs) with Fal; every job journaled, every image kept.

    Construction is cheap and reads nothing; the store and the HTTP client open on first use.
    Without an API key ``enabled`` is False and every call that would reach Fal raises
    ServiceDisabledError saying how to set FAL_API_KEY.
    """

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._settings = settings
        self._transport = transport
        self._client: FalClient | None = None
        self._store: JobStore | None = None
        self._lock = asyncio.Lock()

    # ---- lifecycle ----

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = load_settings()
        return self._settings

    @property
    def enabled(self) -> bool:
        return self.settings.enabled

    async def __aenter__(self) -> FalService:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None
        if self._store is not None:
            await self._store.close()
            self._store = None

    async def store(self) -> JobStore:
        """The library store (opened and migrated on first use)."""
        async with self._lock:
            if self._store is None:
                from falkit.store import JobStore

                self._store = await JobStore.open(self.settings.db_url)
            return self._store

    def client(self) -> FalClient:
        """The Fal client; raises ServiceDisabledError without a key."""
        if not self.enabled:
            raise ServiceDisabledError()
        if self._client is None:
            from falkit.client import FalClient

            self._client = FalClient(self.settings, transport=self._transport)
        return self._client

    async def http(self) -> httpx.AsyncClient:
        return self.client().http

    async def runner(self) -> JobRunner:
        from falkit.service.runner import JobRunner

        return JobRunner(self.client(), await self.store())

    # ---- generation ----

    def prepare_image(self, prompt: str, **params: Any) -> PreparedJob:
        """Validate a request and estimate its cost; nothing is sent."""
        return prepare_image(prompt, **params)

    async def generate_image(
        self,
        prompt: str,
        *,
        model: str = DEFAULT_MODEL,
        image_size: Any = None,
        num_inference_steps: int | None = None,
        guidance_scale: float | None = None,
        seed: int | None = None,
        num_images: int = 1,
        output_format: str | None = None,
        loras: Any = None,
        on_progress: ProgressCallback | None = None,
        out_dir: Path | str | None = None,
        timeout: float | None = None,
        **extra: Any,
    ) -> GenerationResult:
        """Generate, wait, download and record; returns the images on disk with provenance."""
        params: dict[str, Any] = {
            "model": model,
            "image_size": image_size,
            "num_inference_steps": num_inference_steps,
            "guidance_scale": guidance_scale,
            "seed": seed,
            "num_images": num_images,
            "output_format": output_format,
            **extra,
        }
        # Check everything before LoRA references are resolved (which may upload a file).
        self.prepare_image(prompt, loras=loras, **params)
        self.client()  # fail fast without a key, before anything is written or sent
        prompt, loras = await self.resolve_loras(prompt, loras, on_progress)
        prepared = self.prepare_image(prompt, loras=loras, **params)
        job = await self.create_job(prepared)
        result: GenerationResult = await self.run_job(
            job, on_progress, out_dir=Path(out_dir) if out_dir else None, timeout=timeout
        )
        return result

    async def generate_image_events(
        self, prompt: str, **params: Any
    ) -> AsyncIterator[ProgressEvent]:
        """generate_image as an async iterator of progress events.

        The last event is a CompletedEvent carrying the GenerationResult, or a FailedEvent; an
        error is raised after its FailedEvent.
        """
        async for event in _events(
            lambda cb: self.generate_image(prompt, on_progress=cb, **params)
        ):
            yield event

    async def resolve_loras(
        self, prompt: str, loras: Any, on_progress: ProgressCallback | None = None
    ) -> tuple[str, Any]:
        """LoRA references (URLs, library names, local files) as Fal takes them, and the
        prompt with any missing trigger word added (the user is told through a log event)."""
        from falkit.service.loras import resolve_loras

        return await resolve_loras(self, prompt, loras, on_progress)

    async def generate_with_lora(
        self, prompt: str, *, lora_url: str, lora_scale: float = 1.0, **params: Any
    ) -> GenerationResult:
        """generate_image on flux-lora with one LoRA, as in the integration guide.

        lora_url may also be a LoRA's name in the library or a local .safetensors file;
        lora_scale is 0 to 2 (0.6 to 1.0 is the usual range). For several LoRAs at once, call
        generate_image(prompt, model="flux-lora", loras=[...]).
        """
        params.setdefault("model", "flux-lora")
        return await self.generate_image(
            prompt, loras=[{"path": lora_url, "scale": lora_scale}], **params
        )

    async def train_lora(
        self,
        source: str | Path,
        *,
        trigger_word: str | None = None,
        name: str | None = None,
        steps: int = 1000,
        is_style: bool = False,
        create_masks: bool = True,
        on_progress: ProgressCallback | None = None,
    ) -> TrainingResult:
        """Train a Flux LoRA from a folder of images, a local .zip or an http(s) URL to a zip.

        Everything is checked before the upload; the job is journaled and resumable; once done
        the LoRA is registered under ``name`` (default: the trigger word) and its weights are
        kept in FALKIT_HOME/loras/<name>.safetensors.
        """
        from falkit.service.training import train_lora

        return await train_lora(
            self,
            source,
            trigger_word=trigger_word,
            name=name,
            steps=steps,
            is_style=is_style,
            create_masks=create_masks,
            on_progress=on_progress,
        )

    async def generate_batch(self, requests: Any, **options: Any) -> Any:
        """Generate many images within a budget, resumably (see falkit.service.batch)."""
        from falkit.service.batch import generate_batch

        return await generate_batch(self, requests, **options)

    # ---- jobs ----

    async def create_job(
        self, prepared: PreparedJob, *, batch_id: str | None = None, batch_index: int | None = None
    ) -> JobRecord:
        store = await self.store()
        return await store.create_job(
            kind=prepared.kind,
            model=prepared.model,
            endpoint_id=prepared.endpoint_id,
            arguments=prepared.arguments,
            estimated_cost=prepared.estimated_cost,
            batch_id=batch_id,
            batch_index=batch_index,
        )

    async def run_job(
        self,
        job: JobRecord,
        on_progress: ProgressCallback | None = None,
        *,
        out_dir: Path | None = None,
        timeout: float | None = None,
    ) -> Any:
        """Submit a stored job if it never was, else reattach; follow it and finish it.

        With a timeout, waiting stops after that many seconds and raises FalTimeoutError; the
        job stays journaled and `falkit jobs resume` (service.resume) finishes it later.
        """
        runner = await self.runner()
        if job.request_id is None:
            if job.status != "pending":
                raise FalkitError(f"job {job.id} is {job.status}; it will not be submitted again")
            handle = await runner.submit(job, on_progress=on_progress)
            job = await self._reload(job.id)
        else:
            handle = runner.handle_for(job)
        try:
            async with asyncio.timeout(timeout):
                response = await runner.follow(job, handle, on_progress)
        except TimeoutError:
            raise FalTimeoutError(
                f"job {job.id} is still running at Fal after {timeout:g}s; "
                "`falkit jobs resume` will fetch its output",
                request_id=job.request_id,
            ) from None
        if job.kind == "image":
            return await finish_image_job(self, job, response, on_progress, out_dir)
        return await self.finisher(job.kind)(self, job, response, on_progress)

    def finisher(self, kind: str) -> Finisher:
        """How a job of this kind is finished once its output is in."""
        if kind == "training":
            from falkit.service.training import finish_training_job

            return finish_training_job
        raise FalkitError(f"no handler for jobs of kind {kind!r}")

    async def _reload(self, job_id: str) -> JobRecord:
        store = await self.store()
        job = await store.get_job(job_id)
        if job is None:
            raise NotFoundError(f"no job {job_id}")
        return job

    async def get_job(self, job_id: str) -> JobRecord:
        """A job by id, id prefix or Fal request id."""
        return await self._reload(job_id)

    async def list_jobs(
        self, *, search: str | None = None, limit: int = 20, **kw: Any
    ) -> list[JobRecord]:
        store = await self.store()
        return await store.list_jobs(search=search, limit=limit, **kw)

    async def cancel_job(self, job_id: str) -> str:
        """Cancel a job at Fal (or locally if it never was submitted)."""
        job = await self._reload(job_id)
        if job.status in ("completed", "failed", "cancelled", "unknown"):
            return f"ALREADY_{job.status.upper()}"
        runner = await self.runner()
        return await runner.cancel(job)

    async def retry_job(
        self,
        job_id: str,
        on_progress: ProgressCallback | None = None,
        *,
        out_dir: Path | None = None,
    ) -> Any:
        """Submit a failed, cancelled or unknown image job again, as a new job.

        An explicit user choice: for an "unknown" job the first submit may have reached Fal,
        so this may be paid twice.
        """
        old = await self._reload(job_id)
        if old.status not in ("unknown", "failed", "cancelled"):
            raise ValidationError.field(
                "job_id", f"job {old.id} is {old.status}", "a failed, cancelled or unknown job"
            )
        if old.kind != "image":
            raise ValidationError.field(
                "job_id", f"job {old.id} is a {old.kind} job", "image jobs; train LoRAs anew"
            )
        prepared = PreparedJob(old.model, old.endpoint_id, dict(old.arguments), old.estimated_cost)
        self.client()
        job = await self.create_job(prepared)
        return await self.run_job(job, on_progress, out_dir=out_dir)

    async def resume(
        self, on_progress: ProgressCallback | None = None, *, kind: str | None = None
    ) -> list[Any]:
        """Finish every unfinished job: reattach to submitted ones, submit only unsent ones.

        Returns one entry per job: its result, or the exception it ended with.
        """
        store = await self.store()
        jobs = await store.unfinished_jobs(kind=kind)
        self.client()
        # A batch's never-sent jobs wait for `falkit batch resume`, which keeps its budget.
        held = {j.batch_id for j in jobs if j.batch_id and j.request_id is None}
        for batch_id in sorted(held, key=str):
            await emit(
                on_progress,
                LogEvent("", f"batch {batch_id} has unsent jobs: `falkit batch resume {batch_id}`"),
            )
        jobs = [j for j in jobs if not (j.batch_id and j.request_id is None)]
        limit = asyncio.Semaphore(RESUME_CONCURRENCY)

        async def one(job: JobRecord) -> Any:
            async with limit:
                return await self._resume_one(job, on_progress)

        return list(await asyncio.gather(*(one(job) for job in jobs)))

    async def _resume_one(self, job: JobRecord, on_progress: ProgressCallback | None) -> Any:
        if job.status == "submitting":
            from falkit.errors import SubmitUncertainError
            from falkit.service.runner import UNCERTAIN_HINT

            store = await self.store()
            message = "interrupted while submitting; " + UNCERTAIN_HINT.format(job_id=job.id)
            await store.fail_job(job.id, error=message, status="unknown")
            return SubmitUncertainError(message)
        try:
            return await self.run_job(job, on_progress)
        except FalkitError as exc:
            return exc

    # ---- LoRA library ----

    async def list_loras(self) -> list[LoraRecord]:
        """Every registered LoRA."""
        store = await self.store()
        return await store.list_loras()

    async def get_lora(self, name: str) -> LoraRecord:
        """A registered LoRA by name; NotFoundError listing the library when there is none."""
        store = await self.store()
        record = await store.get_lora(name)
        if record is None:
            names = ", ".join(r.name for r in await store.list_loras()) or "none"
            raise NotFoundError(f"no LoRA named {name!r}; registered: {names}")
        return record

    async def remove_lora(self, name: str, *, delete_file: bool = True) -> bool:
        """Forget a LoRA (and delete its kept weights file); False if there was none."""
        store = await self.store()
        record = await store.get_lora(name)
        if record is None:
            return False
        removed = await store.remove_lora(name)
        if removed and delete_file and record.local_path:
            Path(record.local_path).unlink(missing_ok=True)
        return removed


async def _events(
    start: Callable[[ProgressCallback], Awaitable[Any]],
) -> AsyncIterator[ProgressEvent]:
    """Bridge a callback-reporting coroutine into an async iterator of its events."""
    queue: asyncio.Queue[ProgressEvent | None] = asyncio.Queue()

    async def run() -> None:
        try:
            await start(queue.put_nowait)
        finally:
            queue.put_nowait(None)

    task = asyncio.create_task(run())
    try:
        while (event := await queue.get()) is not None:
            yield event
        await task
    finally:
        if not task.done():
            task.cancel()

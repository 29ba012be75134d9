"""FalService: the one service layer under the CLI, the MCP server and the library API."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from falkit.config import Settings, load_settings
from falkit.errors import LookupFailedError, ServiceDisabledError, ValidationError
from falkit.events import BatchProgressEvent, Event, NoteEvent
from falkit.request import ImageRequest, PreparedJob
from falkit.service.budget import Budget
from falkit.service.jobs_api import JobsApi
from falkit.service.progress import ProgressCallback, emit
from falkit.service.results import GenerationResult

if TYPE_CHECKING:
    import httpx

    from falkit.client import FalClient
    from falkit.emulator import EmulatorConfig, EmulatorServer
    from falkit.service.batch import BatchResult
    from falkit.service.engine import Emit, EngineOptions, Finish, JobEngine
    from falkit.service.handle import JobHandle
    from falkit.service.loras import LoraPlan
    from falkit.service.training import TrainingResult
    from falkit.storage import ImageStorage
    from falkit.store import JobRecord, JobStore, LoraRecord


class FalService(JobsApi):
    """Generate images (and train LoRAs) with Fal; every job journaled, every image kept.

    Construction is cheap and reads nothing; the store, the HTTP client and the job engine open
    on first use. Without an API key ``enabled`` is False and every call that would reach Fal
    raises ServiceDisabledError saying how to set FAL_API_KEY. ``spend_cap`` (USD) refuses any
    job whose estimate would take this service's spending past it. ``emulator=True`` (or an
    EmulatorConfig) runs against an offline Fal emulator started in this process, with its own
    library under FALKIT_HOME/emulator: placeholder images, nothing sent to Fal, no key needed.
    """

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        spend_cap: float | None = None,
        engine_options: EngineOptions | None = None,
        emulator: bool | EmulatorConfig = False,
    ) -> None:
        self._settings = settings
        self._emulator = emulator
        self._emulator_server: EmulatorServer | None = None
        self._transport = transport
        self._client: FalClient | None = None
        self._store: JobStore | None = None
        self._engine: JobEngine | None = None
        self._engine_options = engine_options
        self._storage: ImageStorage | None = None
        self._lock = asyncio.Lock()
        self.budget = Budget(
            spend_cap, name="spend cap", hint="a larger spend cap (e.g. --max-spend-usd)"
        )

    # ---- lifecycle ----

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = self._emulated() if self._emulator else load_settings()
        return self._settings

    def _emulated(self) -> Settings:
        """Settings pointing every Fal role at an emulator started now, in this process."""
        from pydantic import SecretStr

        from falkit.config import EMULATOR_KEY
        from falkit.emulator import EmulatorConfig, run_emulator

        config = self._emulator if isinstance(self._emulator, EmulatorConfig) else None
        self._emulator_server = run_emulator(config or EmulatorConfig()).start()
        base = load_settings()
        return base.with_urls(
            self._emulator_server.base_url,
            api_key=SecretStr(EMULATOR_KEY),
            home=base.home / "emulator",
            database_url=None,
        )

    @property
    def enabled(self) -> bool:
        return self.settings.enabled

    async def __aenter__(self) -> FalService:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Stop following jobs (they stay journaled for resume), then close connections."""
        if self._engine is not None:
            await self._engine.aclose()
            self._engine = None
        if self._client is not None:
            await self._client.aclose()
            self._client = None
        if self._store is not None:
            await self._store.close()
            self._store = None
        if self._emulator_server is not None:
            server, self._emulator_server = self._emulator_server, None
            await asyncio.to_thread(server.stop)

    async def store(self) -> JobStore:
        """The library store (opened, and migrated if needed, on first use)."""
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

            options = self._options()
            self._client = FalClient(
                self.settings,
                transport=self._transport,
                connections=options.connections,
                retry=options.retry,
                stream_connections=max(1, options.follow.stream_cap),
            )
        return self._client

    async def http(self) -> httpx.AsyncClient:
        return self.client().http

    def storage(self) -> ImageStorage:
        """Where images are kept: FALKIT_HOME/images, or FALKIT_STORAGE_URL (a bucket)."""
        if self._storage is None:
            from falkit.storage import open_storage

            self._storage = open_storage(self.settings)
        return self._storage

    async def engine(self) -> JobEngine:
        """The job engine (one per service, started on first use)."""
        if self._engine is not None:
            return self._engine
        # The library opens (its own thread) while the HTTP client's modules load.
        opening = asyncio.ensure_future(self.store())
        await asyncio.sleep(0)
        try:
            client = self.client()
        except BaseException:
            await asyncio.gather(opening, return_exceptions=True)
            raise
        store = await opening
        if self._engine is None:
            from falkit.service.engine import JobEngine

            self._engine = JobEngine(client, store, self._options())
        return self._engine

    def _options(self) -> EngineOptions:
        if self._engine_options is None:
            from falkit.service.engine import EngineOptions

            self._engine_options = EngineOptions()
        return self._engine_options

    # ---- generation ----

    def request(self, prompt: Any = None, /, **params: Any) -> ImageRequest:
        """An image request from any mix of Fal's names and the short ones (checked later)."""
        return ImageRequest.build(prompt, **params)

    def prepare_image(self, prompt: Any = None, /, **params: Any) -> PreparedJob:
        """Validate a request and estimate its cost; nothing is sent (LoRA names unresolved)."""
        return self.request(prompt, **params).prepare()

    async def plan_image(self, request: ImageRequest) -> tuple[PreparedJob, LoraPlan]:
        """Everything checked offline: LoRA references classified (library, files), missing
        trigger words added, the request validated once. Nothing is written or sent."""
        from falkit.service.loras import plan_loras

        store = await self.store() if request.loras else None
        plan = await plan_loras(store, request.prompt, request.loras)
        prepared = request.with_prompt(plan.prompt).prepare(plan.wire() or None)
        return prepared, plan

    async def start_image(
        self,
        request: ImageRequest,
        *,
        out_dir: Path | str | None = None,
        budget: Budget | None = None,
    ) -> JobHandle:
        """Check, reserve the estimate, journal, and start a generation; returns at once.

        Bad input, a missing key or a budget that would be passed raise here, before anything
        is written or sent.
        """
        prepared, plan = await self.plan_image(request)
        return await self.start_prepared(prepared, plan=plan, out_dir=out_dir, budget=budget)

    async def start_prepared(
        self,
        prepared: PreparedJob,
        *,
        plan: LoraPlan | None = None,
        out_dir: Path | str | None = None,
        budget: Budget | None = None,
    ) -> JobHandle:
        """Start a checked request (see start_image)."""
        from falkit.service.checks import check_out_dir
        from falkit.service.engine import reserve_all
        from falkit.store.ids import new_id

        check_out_dir(out_dir)  # an unwritable --out fails before anything is written or sent
        engine = await self.engine()
        budgets = (self.budget, *([budget] if budget is not None else []))
        notes = [NoteEvent("", text, "WARNING") for text in (plan.notes if plan else ())]
        finish = self.image_finisher(Path(out_dir) if out_dir else None)
        what, job_id = f"this {prepared.model} job", new_id("j")
        options: dict[str, Any] = {
            "finish": finish, "budgets": budgets, "estimate": prepared.estimated_cost,
            "what": what, "notes": notes,
        }  # fmt: skip
        reserve_all(budgets, job_id, prepared.estimated_cost, what)
        try:
            if plan is not None and plan.needs_network:
                prepare = self._lora_preparer(prepared, plan, job_id)
                return engine.launch(job_id, "image", prepare=prepare, **options)
            job = await self.create_job(prepared, job_id=job_id)
            return engine.launch(job_id, "image", record=job, **options)
        except BaseException:
            for item in budgets:
                item.release(job_id)
            raise

    def _lora_preparer(
        self, prepared: PreparedJob, plan: LoraPlan, job_id: str
    ) -> Callable[[Emit], Awaitable[JobRecord]]:
        """The step before journaling a job whose LoRAs need uploading or checking."""

        async def prepare(emit_: Emit) -> JobRecord:
            from falkit.service.loras import fetch_loras

            loras = await fetch_loras(self, plan, emit_)
            arguments = {**prepared.arguments, "loras": loras}
            resolved = PreparedJob(**{**prepared.__dict__, "arguments": arguments})
            return await self.create_job(resolved, job_id=job_id)

        return prepare

    async def generate_image(
        self,
        prompt: str,
        *,
        model: str | None = None,
        image_size: Any = None,
        num_inference_steps: int | None = None,
        guidance_scale: float | None = None,
        seed: int | None = None,
        num_images: int | None = None,
        output_format: str | None = None,
        loras: Any = None,
        on_progress: ProgressCallback | None = None,
        out_dir: Path | str | None = None,
        timeout: float | None = None,
        **extra: Any,
    ) -> GenerationResult:
        """Generate, wait, download and record; returns the images on disk with provenance.

        ``model`` defaults to flux-schnell (flux-lora when ``loras`` are given). With a
        ``timeout``, FalTimeoutError after that many seconds; the job goes on and
        `falkit jobs resume` finishes it if this service closes first.
        """
        request = self.request(
            prompt, model=model, image_size=image_size, num_inference_steps=num_inference_steps,
            guidance_scale=guidance_scale, seed=seed, num_images=num_images,
            output_format=output_format, loras=loras, **extra,
        )  # fmt: skip
        if timeout is not None and not timeout > 0:
            raise ValidationError.field("timeout", f"{timeout} is not a timeout", "seconds > 0")
        handle = await self.start_image(request, out_dir=out_dir)
        result: GenerationResult = await follow(handle, on_progress, timeout)
        return result

    async def generate_image_events(self, prompt: str, **params: Any) -> AsyncIterator[Event]:
        """generate_image as an async iterator of events; the last is CompletedEvent (with the
        GenerationResult), FailedEvent or CancelledEvent. Errors are raised after it."""
        handle = await self.start_image(self.request(prompt, **params))
        async for event in handle.events():
            yield event
        await handle.result()

    async def resolve_loras(
        self, prompt: str, loras: Any, on_progress: ProgressCallback | None = None
    ) -> tuple[str, list[dict[str, Any]]]:
        """LoRA references (URLs, library names, local files) as Fal takes them, and the
        prompt with any missing trigger word added (the user is told through a note event)."""
        from falkit.request import parse_loras
        from falkit.service.loras import fetch_loras, plan_loras

        refs = parse_loras(loras)
        needs_store = any(not ref.path.startswith(("https://", "http://", "data:")) for ref in refs)
        plan = await plan_loras(await self.store() if needs_store else None, prompt, refs)
        for text in plan.notes:
            await emit(on_progress, NoteEvent("", text, "WARNING"))
        events: list[Event] = []
        resolved = await fetch_loras(self, plan, events.append)
        for event in events:
            await emit(on_progress, event)
        return plan.prompt, resolved

    async def generate_with_lora(
        self, prompt: str, *, lora_url: str, lora_scale: float = 1.0, **params: Any
    ) -> GenerationResult:
        """generate_image on flux-lora with one LoRA, as in the integration guide.

        lora_url may also be a LoRA's name in the library or a local .safetensors file;
        lora_scale is 0 to 2 (0.6 to 1.0 is the usual range).
        """
        return await self.generate_image(
            prompt, loras=[{"path": lora_url, "scale": lora_scale}], **params
        )

    def image_finisher(self, out_dir: Path | None = None) -> Finish:
        from falkit.service.generate import finish_image_job

        async def finish(job: JobRecord, response: Any, emit_: Emit) -> GenerationResult:
            return await finish_image_job(self, job, response, emit_, out_dir)

        return finish

    # ---- LoRA training ----

    async def start_training(
        self,
        source: str | Path,
        *,
        trigger_word: str | None = None,
        name: str | None = None,
        steps: int = 1000,
        is_style: bool = False,
        create_masks: bool = True,
    ) -> JobHandle:
        """Check a training request, then pack, upload, journal and train in the background."""
        from falkit.service.training import start_training

        return await start_training(
            self, source, trigger_word=trigger_word, name=name, steps=steps,
            is_style=is_style, create_masks=create_masks,
        )  # fmt: skip

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
        handle = await self.start_training(
            source, trigger_word=trigger_word, name=name, steps=steps,
            is_style=is_style, create_masks=create_masks,
        )  # fmt: skip
        result: TrainingResult = await follow(handle, on_progress)
        return result

    # ---- batches ----

    async def generate_batch(
        self,
        requests: str | Path | Sequence[Any],
        *,
        seeds: str | Sequence[int] | None = None,
        models: str | Sequence[str] | None = None,
        guidance: str | Sequence[float] | None = None,
        sizes: str | Sequence[str] | None = None,
        lora_scales: str | Sequence[float] | None = None,
        defaults: dict[str, Any] | None = None,
        concurrency: int = 64,
        budget: float | None = None,
        out_dir: str | Path | None = None,
        dry_run: bool = False,
        retry_failed: bool = False,
        on_progress: Callable[[BatchProgressEvent], None] | None = None,
    ) -> BatchResult:
        """Generate every request under every sweep combination, within a budget, resumably.

        ``requests`` is an input file (text, .jsonl or .csv) or a list of prompts / request
        dicts; ``defaults`` fill parameters the requests leave out. See falkit.service.batch.
        """
        from falkit.service.batch import generate_batch

        return await generate_batch(
            self, requests, seeds=seeds, models=models, guidance=guidance, sizes=sizes,
            lora_scales=lora_scales, defaults=defaults, concurrency=concurrency, budget=budget,
            out_dir=out_dir, dry_run=dry_run, retry_failed=retry_failed, on_progress=on_progress,
        )  # fmt: skip

    async def resume_batch(
        self,
        batch_id: str,
        *,
        concurrency: int | None = None,
        budget: float | None = None,
        out_dir: str | Path | None = None,
        retry_failed: bool = False,
        on_progress: Callable[[BatchProgressEvent], None] | None = None,
    ) -> BatchResult:
        """Carry on a stored batch: its own options unless given anew."""
        from falkit.service.batch import resume_batch

        return await resume_batch(
            self, batch_id, concurrency=concurrency, budget=budget, out_dir=out_dir,
            retry_failed=retry_failed, on_progress=on_progress,
        )  # fmt: skip

    # ---- LoRA library ----

    async def list_loras(self) -> list[LoraRecord]:
        """Every registered LoRA."""
        store = await self.store()
        return await store.list_loras()

    async def get_lora(self, name: str) -> LoraRecord:
        """A registered LoRA by name; LookupFailedError listing the library when there is none."""
        store = await self.store()
        record = await store.get_lora(name)
        if record is None:
            names = ", ".join(r.name for r in await store.list_loras()) or "none"
            raise LookupFailedError(f"no LoRA named {name!r}; registered: {names}")
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


async def follow(
    handle: JobHandle, on_progress: ProgressCallback | None, timeout: float | None = None
) -> Any:
    """A job's result, passing its events to ``on_progress`` as they come."""
    if on_progress is None:
        return await handle.result(timeout)

    async def relay() -> None:
        async for event in handle.events():
            await emit(on_progress, event)

    relaying = asyncio.create_task(relay())
    try:
        result = await handle.result(timeout)
        await relaying
        return result
    except BaseException:
        if not relaying.done():
            await asyncio.wait({relaying}, timeout=0.5)
            relaying.cancel()
        raise

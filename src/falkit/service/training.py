"""LoRA training: check the dataset, upload it, train once, keep the weights, register the name.

A training job is journaled like a generation job (kind "training", model "flux-lora-training")
and runs through the same runner, so progress, cancel and `falkit jobs resume` work the same way.
The job's arguments are exactly what Fal receives. The falkit-side choices Fal never sees (the
LoRA's name in the library, where the images came from) are kept in a small pending record,
FALKIT_HOME/loras/pending/<job id>.json, written before the submit and removed once the LoRA is
registered; a job resumed without it (a crash in the instant between journaling and writing it)
is registered under its trigger word.
"""

from __future__ import annotations

import asyncio
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pydantic

from falkit.catalog import MODELS, TrainingOutput
from falkit.errors import DownloadError, JobFailedError, ValidationError
from falkit.events import DownloadingEvent, NoteEvent
from falkit.request import PreparedJob
from falkit.service.dataset import Dataset, load_path, problem
from falkit.service.downloads import atomic_write
from falkit.service.generate import recorded_cost
from falkit.service.loras import check_name, name_from, safetensors_header
from falkit.types import FalResponse

if TYPE_CHECKING:
    from falkit.service.core import FalService
    from falkit.service.engine import Emit
    from falkit.service.handle import JobHandle
    from falkit.store import JobRecord, JobStore, LoraRecord

MODEL = "flux-lora-training"
UNFINISHED = ("pending", "submitting", "submitted", "running")


@dataclass(frozen=True)
class TrainingResult:
    """A trained LoRA, registered in the library and kept on disk."""

    job_id: str
    request_id: str | None
    name: str
    trigger_word: str | None
    url: str
    config_url: str | None
    local_path: Path
    params: dict[str, Any]
    cost_usd: float | None
    status: str = "completed"

    @property
    def paths(self) -> list[Path]:
        return [self.local_path]

    def to_json(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "kind": "training",
            "job_id": self.job_id,
            "request_id": self.request_id,
            "name": self.name,
            "trigger_word": self.trigger_word,
            "url": self.url,
            "config_url": self.config_url,
            "local_path": str(self.local_path),
            "params": self.params,
            "cost_usd": self.cost_usd,
        }


@dataclass(frozen=True)
class TrainingPlan:
    """A checked training request: the name to register, the arguments, the data to upload."""

    name: str
    source: str
    arguments: dict[str, Any]
    dataset: Dataset | None  # None when the source is a URL Fal fetches itself


# ---- checking (no network) ----


async def plan_training(
    service: FalService,
    source: str | Path,
    *,
    trigger_word: str | None,
    name: str | None,
    steps: int,
    is_style: bool,
    create_masks: bool,
) -> TrainingPlan:
    """Every check a training request gets before anything is uploaded or submitted."""
    text = str(source).strip()
    word = (trigger_word or "").strip() or None
    params = {"steps": steps, "is_style": is_style, "create_masks": create_masks}
    arguments = MODELS[MODEL].validate(
        {"images_data_url": text or "-", "trigger_word": word, **params}
    )
    chosen = check_name(name.strip()) if name else name_from(word or _stem_of(text))
    await _check_name_free(service, chosen)
    dataset = None if _is_url(text) else await asyncio.to_thread(load_source, text)
    if dataset is not None and word is None and not dataset.all_captioned:
        bare = sum(1 for n in dataset.images if n not in dataset.captions)
        raise ValidationError.field(
            "trigger_word",
            f"is required: {bare} of {len(dataset.images)} images have no .txt caption",
            "pass --trigger-word WORD, or give every image a same-named .txt caption",
        )
    return TrainingPlan(chosen, text, arguments, dataset)


def load_source(text: str) -> Dataset:
    """The dataset behind a local folder or zip path."""
    if not text:
        raise problem("source", "no folder, zip or URL given")
    return load_path(Path(text).expanduser(), text)


def _is_url(text: str) -> bool:
    return text.startswith(("https://", "http://"))


def _stem_of(text: str) -> str:
    tail = text.rstrip("/").rsplit("/", 1)[-1].split("?", 1)[0]
    return tail.removesuffix(".zip").removesuffix(".ZIP")


async def _check_name_free(service: FalService, name: str) -> None:
    store = await service.store()
    taken = await store.get_lora(name) is not None
    if not taken:
        for job_id, pending in read_all_pending(service.settings.home).items():
            job = await store.get_job(job_id) if pending.get("name") == name else None
            taken = taken or (job is not None and job.status in UNFINISHED)
    if taken:
        raise ValidationError.field(
            "name",
            f"a LoRA named {name!r} already exists or is being trained",
            "choose another --name, or `falkit lora rm NAME` first",
        )


# ---- pending records: the LoRA's name until it is registered ----


def pending_dir(home: Path) -> Path:
    return home / "loras" / "pending"


def write_pending(home: Path, job_id: str, record: dict[str, Any]) -> None:
    folder = pending_dir(home)
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write(folder / f"{job_id}.json", json.dumps(record, indent=2).encode())


def read_pending(home: Path, job_id: str) -> dict[str, Any] | None:
    try:
        value = json.loads((pending_dir(home) / f"{job_id}.json").read_text("utf-8"))
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def read_all_pending(home: Path) -> dict[str, dict[str, Any]]:
    folder = pending_dir(home)
    if not folder.is_dir():
        return {}
    found = {p.stem: read_pending(home, p.stem) for p in folder.glob("*.json")}
    return {job_id: record for job_id, record in found.items() if record is not None}


# ---- training ----


async def start_training(
    service: FalService,
    source: str | Path,
    *,
    trigger_word: str | None = None,
    name: str | None = None,
    steps: int = 1000,
    is_style: bool = False,
    create_masks: bool = True,
) -> JobHandle:
    """Check everything (no network), then pack, upload, journal, submit once, follow, keep
    and register the LoRA in the background; the handle comes back at once."""
    from falkit.store.ids import new_id

    plan = await plan_training(
        service,
        source,
        trigger_word=trigger_word,
        name=name,
        steps=steps,
        is_style=is_style,
        create_masks=create_masks,
    )
    client = service.client()  # fail fast without a key, before anything is uploaded
    engine = await service.engine()
    spec = MODELS[MODEL]
    estimate = spec.estimate_cost(plan.arguments)
    job_id = new_id("j")

    async def prepare(emit: Emit) -> JobRecord:
        url = plan.source
        if plan.dataset is not None:
            data = plan.dataset
            emit(NoteEvent("", f"dataset ok: {len(data.images)} images, "
                           f"{len(data.captions)} captions; uploading"))  # fmt: skip
            packed = await asyncio.to_thread(data.pack)
            url = await client.upload(packed, "application/zip", f"{plan.name}.zip")
        arguments = {**plan.arguments, "images_data_url": url}
        prepared = PreparedJob(spec.name, spec.endpoint_id, arguments, estimate, kind="training")
        count = len(plan.dataset.images) if plan.dataset else None
        pending = {"name": plan.name, "source": plan.source, "images": count}
        write_pending(service.settings.home, job_id, pending)
        return await service.create_job(prepared, job_id=job_id)

    async def finish(job: JobRecord, response: FalResponse, emit: Emit) -> TrainingResult:
        return await finish_training_job(service, job, response, emit)

    handle = engine.launch(
        job_id, "training", finish=finish, prepare=prepare, estimate=estimate,
        budgets=(service.budget,), what="this LoRA training",
    )  # fmt: skip
    home = service.settings.home
    handle.add_done_callback(lambda error: _forget_pending(home, job_id, error))
    return handle


def _forget_pending(home: Path, job_id: str, error: BaseException | None) -> None:
    """A training that failed or was cancelled at Fal never registers anything."""
    if isinstance(error, JobFailedError):
        (pending_dir(home) / f"{job_id}.json").unlink(missing_ok=True)


async def finish_training_job(
    service: FalService, job: JobRecord, response: FalResponse, emit: Emit
) -> TrainingResult:
    """Download and verify the weights, register the LoRA, complete the job (safe to re-run)."""
    try:
        output = TrainingOutput.model_validate(response.data)
    except pydantic.ValidationError:
        keys = ", ".join(sorted(response.data)) or "nothing"
        raise DownloadError(f"training output has no diffusers_lora_file (got {keys})") from None
    home = service.settings.home
    pending = read_pending(home, job.id) or {}
    store = await service.store()
    name, record = await _registration_name(store, job, pending, emit)
    if record is None:
        emit(DownloadingEvent(job.id, 1))
        local = await download_lora(service, output.diffusers_lora_file.url, name)
        config = output.config_file.url if output.config_file else None
        record = await store.add_lora(
            name=name,
            url=output.diffusers_lora_file.url,
            trigger_word=job.arguments.get("trigger_word"),
            config_url=config,
            local_path=str(local),
            job_id=job.id,
            params=_lora_params(job, pending),
        )
    cost = recorded_cost(MODELS[MODEL], response, job.estimated_cost)
    await store.complete_job(
        job.id,
        seed=None,
        cost_usd=cost,
        billable_units=response.billable_units,
        timings=None,
        output=response.data,
        images=[],
    )
    (pending_dir(home) / f"{job.id}.json").unlink(missing_ok=True)
    return result_from(record, job, cost)


async def _registration_name(
    store: JobStore, job: JobRecord, pending: dict[str, Any], emit: Emit
) -> tuple[str, LoraRecord | None]:
    """The name to register under, and the record if this job already registered it."""
    wanted = str(pending.get("name") or name_from(job.arguments.get("trigger_word") or job.id))
    existing = await store.get_lora(wanted)
    if existing is None:
        return wanted, None
    if existing.job_id == job.id:
        return wanted, existing
    other = f"{wanted}-{job.id[-6:]}"
    again = await store.get_lora(other)
    message = f"a LoRA named {wanted!r} appeared meanwhile; registering this one as {other!r}"
    emit(NoteEvent(job.id, message, "WARNING"))
    return other, again if again is not None and again.job_id == job.id else None


def _lora_params(job: JobRecord, pending: dict[str, Any]) -> dict[str, Any]:
    args = job.arguments
    keys = ("steps", "is_style", "create_masks", "images_data_url")
    params: dict[str, Any] = {k: args[k] for k in keys if k in args}
    params.update(source=pending.get("source"), images=pending.get("images"))
    params.update(model=MODEL, endpoint_id=job.endpoint_id, request_id=job.request_id)
    return params


async def download_lora(service: FalService, url: str, name: str) -> Path:
    """The weights saved as FALKIT_HOME/loras/<name>.safetensors, verified, moved in atomically."""
    from falkit.service.downloads import fetch_to_temp

    folder = service.settings.home / "loras"
    folder.mkdir(parents=True, exist_ok=True)
    tmp = await fetch_to_temp(await service.http(), url, folder)
    try:
        await asyncio.to_thread(_verify_and_sync, tmp)
        final = folder / f"{name}.safetensors"
        os.replace(tmp, final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return final


def _verify_and_sync(path: Path) -> None:
    try:
        safetensors_header(path)
    except (ValueError, OSError) as exc:
        raise DownloadError(f"the trained LoRA is not a safetensors file: {exc}") from None
    with path.open("rb+") as handle:
        os.fsync(handle.fileno())


def result_from(record: LoraRecord, job: JobRecord, cost: float | None) -> TrainingResult:
    return TrainingResult(
        job_id=job.id,
        request_id=job.request_id,
        name=record.name,
        trigger_word=record.trigger_word,
        url=record.url,
        config_url=record.config_url,
        local_path=Path(record.local_path or ""),
        params=dict(record.params or {}),
        cost_usd=cost,
    )

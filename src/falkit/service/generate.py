"""Image generation: check, journal, submit once, follow, download, record."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import TYPE_CHECKING, Any

from falkit.catalog import DEFAULT_MODEL, ImageOutput, ModelSpec, get_model
from falkit.errors import ValidationError
from falkit.service.downloads import copy_out, save_image, slug
from falkit.service.progress import ProgressCallback, emit
from falkit.service.results import GenerationResult, PreparedJob
from falkit.types import CompletedEvent, DownloadingEvent, FalResponse, LoraWeight

if TYPE_CHECKING:
    from falkit.service.core import FalService
    from falkit.store import JobRecord, NewImage


def lora_list(loras: Any) -> list[dict[str, Any]] | None:
    """LoRAs in any accepted form (URL strings, dicts, LoraWeight) as wire dicts."""
    if loras is None:
        return None
    items = loras if isinstance(loras, list | tuple) else [loras]
    out: list[dict[str, Any]] = []
    for item in items:
        if isinstance(item, str):
            out.append({"path": item, "scale": 1.0})
        elif isinstance(item, LoraWeight):
            out.append(item.model_dump())
        else:
            out.append(dict(item))
    return out


def prepare_image(
    prompt: str,
    *,
    model: str = DEFAULT_MODEL,
    image_size: Any = None,
    num_inference_steps: int | None = None,
    guidance_scale: float | None = None,
    seed: int | None = None,
    num_images: int | None = None,
    output_format: str | None = None,
    loras: Any = None,
    **extra: Any,
) -> PreparedJob:
    """Check a generation request against the catalog; nothing is sent."""
    params: dict[str, Any] = {
        "prompt": prompt,
        "image_size": image_size,
        "num_inference_steps": num_inference_steps,
        "guidance_scale": guidance_scale,
        "seed": seed,
        "num_images": num_images,
        "output_format": output_format,
        "loras": lora_list(loras),
        **extra,
    }
    spec = get_model(model)
    if spec is None:  # a raw endpoint id: untyped arguments, unknown price
        args = {k: v for k, v in params.items() if v is not None}
        if not str(prompt).strip():
            raise ValidationError.field("prompt", "must not be empty")
        return PreparedJob(model, model, args, None)
    if spec.kind != "image":
        raise ValidationError.field(
            "model", f"{spec.name} is not an image model", _image_model_names()
        )
    if params["loras"] and not spec.takes_loras:
        raise ValidationError.field(
            "loras", f"{spec.name} does not take LoRAs", "use flux-lora or sdxl"
        )
    arguments = spec.validate(params)
    return PreparedJob(spec.name, spec.endpoint_id, arguments, spec.estimate_cost(arguments))


def _image_model_names() -> str:
    from falkit.catalog import image_models

    return ", ".join(m.name for m in image_models())


def recorded_cost(
    spec: ModelSpec | None, response: FalResponse, estimate: float | None
) -> float | None:
    """Billable units times the unit price when Fal sends them, else the estimate."""
    if spec is None or response.billable_units is None:
        return estimate
    if spec.price.unit == "run":
        return spec.price.usd
    return round(response.billable_units * spec.price.usd, 6)


async def finish_image_job(
    service: FalService,
    job: JobRecord,
    response: FalResponse,
    on_progress: ProgressCallback | None,
    out_dir: Path | None = None,
) -> GenerationResult:
    """Download every output image, then record the job as completed (one transaction)."""
    output = ImageOutput.model_validate(response.data)
    await emit(on_progress, DownloadingEvent(job.id, len(output.images)))
    seed = output.seed if output.seed is not None else job.arguments.get("seed")
    metadata = {
        "prompt": job.prompt,
        "model": job.model,
        "endpoint_id": job.endpoint_id,
        "seed": seed,
        "job_id": job.id,
        "request_id": job.request_id,
        "arguments": job.arguments,
    }
    folder = service.settings.home / "images" / dt.date.today().isoformat()
    saved: list[NewImage] = []
    from falkit.store import NewImage

    for index, image in enumerate(output.images):
        stem = f"{job.id}_{index}_{slug(job.prompt or job.model)}"
        kept = await save_image(
            await service.http(),
            image.url,
            declared_type=image.content_type,
            folder=folder,
            stem=stem,
            metadata={**metadata, "index": index},
        )
        nsfw = output.has_nsfw_concepts[index] if index < len(output.has_nsfw_concepts) else None
        saved.append(
            NewImage(
                index=index,
                url=image.url if not image.url.startswith("data:") else "data:",
                local_path=str(kept.path),
                sha256=kept.sha256,
                size_bytes=kept.size_bytes,
                width=kept.width,
                height=kept.height,
                content_type=kept.content_type,
                nsfw=nsfw,
            )
        )
    spec = get_model(job.model)
    store = await service.store()
    await store.complete_job(
        job.id,
        seed=seed,
        cost_usd=recorded_cost(spec, response, job.estimated_cost),
        billable_units=response.billable_units,
        timings=output.timings,
        output=_output_summary(response.data),
        images=saved,
    )
    record = await store.get_job(job.id)
    assert record is not None
    result = GenerationResult.from_record(record)
    if out_dir is not None:
        copies = tuple(copy_out(img.path, out_dir) for img in result.images)
        result = GenerationResult(**{**result.__dict__, "copies": copies})
    await emit(on_progress, CompletedEvent(job.id, result))
    return result


def _output_summary(data: dict[str, Any]) -> dict[str, Any]:
    """The output as recorded: data URIs are dropped (the file on disk is the copy)."""
    images = [
        {**img, "url": "data:"} if str(img.get("url", "")).startswith("data:") else img
        for img in data.get("images", [])
        if isinstance(img, dict)
    ]
    return {**data, "images": images}

"""Image jobs: finishing one (download, keep, record) once Fal has its output."""

from __future__ import annotations

import datetime as dt
import hashlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from falkit.catalog import ImageOutput, ModelSpec, get_model
from falkit.events import DownloadingEvent
from falkit.service.downloads import EXTENSIONS, copy_out, fetch_image, inspect_image, slug
from falkit.service.results import GenerationResult
from falkit.types import FalResponse

if TYPE_CHECKING:
    from falkit.service.core import FalService
    from falkit.service.engine import Emit
    from falkit.store import JobRecord, NewImage


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
    emit: Emit,
    out_dir: Path | None = None,
) -> GenerationResult:
    """Download every output image, then record the job as completed (one transaction)."""
    output = ImageOutput.model_validate(response.data)
    emit(DownloadingEvent(job.id, len(output.images)))
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
    saved = [
        await _keep(service, job, output, index, folder, metadata)
        for index in range(len(output.images))
    ]
    store = await service.store()
    record = await store.complete_job(
        job.id,
        seed=seed,
        cost_usd=recorded_cost(get_model(job.model), response, job.estimated_cost),
        billable_units=response.billable_units,
        timings=output.timings,
        output=_output_summary(response.data),
        images=saved,
    )
    result = GenerationResult.from_record(record)
    if out_dir is not None:
        copies = tuple(copy_out(img.path, out_dir) for img in result.images)
        result = GenerationResult(**{**result.__dict__, "copies": copies})
    return result


async def _keep(
    service: FalService,
    job: JobRecord,
    output: ImageOutput,
    index: int,
    folder: Path,
    metadata: dict[str, Any],
) -> NewImage:
    from falkit.store import NewImage

    image = output.images[index]
    stem = f"{job.id}_{index}_{slug(job.prompt or job.model)}"
    data, kind, width, height = await fetch_image(
        await service.http(),
        image.url,
        declared_type=image.content_type,
        folder=folder,
        metadata={**metadata, "index": index},
    )
    # Written once: a job finished twice (its task run again) keeps the first file.
    kept = await service.storage().put_new(f"{folder.name}/{stem}.{EXTENSIONS[kind]}", data, kind)
    if not kept.written:
        kind, width, height = inspect_image(kept.data, None)
    nsfw = output.has_nsfw_concepts[index] if index < len(output.has_nsfw_concepts) else None
    return NewImage(
        index=index,
        url=image.url if not image.url.startswith("data:") else "data:",
        local_path=kept.location,
        sha256=hashlib.sha256(kept.data).hexdigest(),
        size_bytes=len(kept.data),
        width=width,
        height=height,
        content_type=kind,
        nsfw=nsfw,
    )


def _output_summary(data: dict[str, Any]) -> dict[str, Any]:
    """The output as recorded: data URIs are dropped (the file on disk is the copy)."""
    images = [
        {**img, "url": "data:"} if str(img.get("url", "")).startswith("data:") else img
        for img in data.get("images", [])
        if isinstance(img, dict)
    ]
    return {**data, "images": images}

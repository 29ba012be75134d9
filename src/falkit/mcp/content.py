"""Tool answers: text a model can act on, small image previews, and links to the kept files.

Every answer also carries the same facts as structured content for programs. Previews are
JPEG thumbnails (at most THUMB_SIDE pixels a side, a few tens of KB), far under the size chat
hosts accept; the full image stays on disk and is named by path and file:// link.
"""

from __future__ import annotations

import asyncio
import base64
import io
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mcp.types import CallToolResult, ContentBlock, ImageContent, ResourceLink, TextContent

from falkit.views import job_json

if TYPE_CHECKING:
    from falkit.service.results import GenerationResult, ResultImage
    from falkit.service.training import TrainingResult
    from falkit.store import JobRecord

THUMB_SIDE = 320
THUMB_QUALITY = 80


def answer(text: str, data: dict[str, Any], extra: Sequence[ContentBlock] = ()) -> CallToolResult:
    """A tool result: text first (what the model reads), then any blocks, with structured data."""
    blocks: list[ContentBlock] = [TextContent(type="text", text=text), *extra]
    return CallToolResult(content=blocks, structured_content=data)


def thumbnail(path: Path, side: int = THUMB_SIDE) -> bytes:
    """A JPEG preview of an image file, at most ``side`` pixels on its longer side."""
    from PIL import Image

    with Image.open(path) as image:
        image.thumbnail((side, side))
        preview = image.convert("RGB")
    buffer = io.BytesIO()
    preview.save(buffer, "JPEG", quality=THUMB_QUALITY, optimize=True)
    return buffer.getvalue()


async def image_blocks(images: Sequence[ResultImage]) -> list[ContentBlock]:
    """For each image: its preview, a file:// link to the kept file and a link to Fal's URL."""
    blocks: list[ContentBlock] = []
    for index, image in enumerate(images, start=1):
        if image.path.is_file():
            data = await asyncio.to_thread(thumbnail, image.path)
            encoded = base64.b64encode(data).decode("ascii")
            blocks.append(ImageContent(type="image", data=encoded, mime_type="image/jpeg"))
            blocks.append(_file_link(image, index))
        if image.url.startswith(("https://", "http://")):
            blocks.append(
                ResourceLink(
                    type="resource_link",
                    uri=image.url,
                    name=f"image {index} at Fal",
                    description="Fal's copy of the image; it expires, the local file is kept",
                    mime_type=image.content_type,
                )
            )
    return blocks


def _file_link(image: ResultImage, index: int) -> ResourceLink:
    size = image.path.stat().st_size
    return ResourceLink(
        type="resource_link",
        uri=image.path.resolve().as_uri(),
        name=image.path.name,
        title=f"image {index} ({image.width}x{image.height})",
        description="The full-size image, kept on the user's computer",
        mime_type=image.content_type,
        size=size,
    )


def image_lines(images: Sequence[ResultImage]) -> list[str]:
    lines: list[str] = []
    for index, image in enumerate(images, start=1):
        lines.append(f"Image {index}: {image.path} ({image.width}x{image.height})")
        if image.url.startswith(("https://", "http://")):
            lines.append(f"  Fal URL (expires; the file above is kept): {image.url}")
    return lines


def _cost(value: float | None) -> str:
    return "unknown" if value is None else f"${value:.4f}"


async def generation_answer(result: GenerationResult, notes: Sequence[str] = ()) -> CallToolResult:
    """A finished generation: what was made, where it is, previews and links."""
    count = len(result.images)
    head = (
        f"Generated {count} image{'s' if count != 1 else ''} with {result.model} "
        f"(job {result.job_id}, seed {result.seed}, cost {_cost(result.cost_usd)})."
    )
    lines = [head, *image_lines(result.images), *notes]
    data = {**result.to_json(), "done": True, "notes": list(notes)}
    return answer("\n".join(lines), data, await image_blocks(result.images))


def training_answer(result: TrainingResult) -> CallToolResult:
    word = result.trigger_word
    usage = f'put "{word}" in the prompt' if word else "describe the subject as in the captions"
    text = (
        f"LoRA {result.name!r} is trained (job {result.job_id}, cost {_cost(result.cost_usd)}) "
        f"and kept at {result.local_path}. Use it: generate_image with loras "
        f'["{result.name}"] and {usage}.'
    )
    return answer(text, {**result.to_json(), "done": True})


def running_answer(job_id: str, kind: str, status: str, progress: str | None) -> CallToolResult:
    """A job still going: its id and what to do next."""
    what = "training" if kind == "training" else "generation"
    where = f" ({progress})" if progress else ""
    text = (
        f"The {what} job {job_id} is still {status}{where}. It keeps running in this falkit "
        f'server, which saves its result when it ends. Call get_job with job_id "{job_id}" to '
        "wait for it and get the result."
    )
    data = {"job_id": job_id, "kind": kind, "status": status, "done": False, "progress": progress}
    return answer(text, data)


def preparing_answer(key: str) -> CallToolResult:
    text = (
        f"The training request {key} is still being checked and uploaded. Call get_job with "
        f'job_id "{key}" to follow it.'
    )
    return answer(text, {"job_id": key, "kind": "training", "status": "preparing", "done": False})


def ended_answer(job: JobRecord) -> CallToolResult:
    """A job that failed, was cancelled, or whose submit is uncertain."""
    text = f"Job {job.id} ({job.kind}, {job.model}) ended {job.status}: {job.error or 'no detail'}"
    if job.status == "unknown":
        text += (
            f" Nothing was resent. If the user wants, `falkit jobs retry {job.id}` submits it anew."
        )
    return answer(text, {**job_json(job), "done": True})


def job_line(job: JobRecord) -> str:
    prompt = (job.prompt or "").replace("\n", " ")
    prompt = prompt if len(prompt) <= 60 else prompt[:59] + "…"
    label = f" {prompt!r}" if prompt else ""
    files = f", {len(job.images)} image(s): {job.images[0].local_path}" if job.images else ""
    when = job.created_at.strftime("%Y-%m-%d %H:%M")
    return f"{job.id} {job.status} {job.model} {when}{label}{files}"
